"""A study that chooses a default: one multirun varying some config keys of one method, then its table.

Runs ``vaenmf-train -m method=METHOD KEY=V1,V2 ... seed=SEEDS`` (CSV logging, every job under ``OUT/sweep``,
the fitted dictionaries in one cache shared by all studies), then writes ``OUT/table.md`` and
``OUT/table.json``: one row per value combination of the varied keys, each cell the mean over noises (speech)
or movements (synergies) and seeds with its 95% interval (``vaenmf.report.study``), the row of the current
default (what conf/ composes for the method) marked, and, with ``--reference``, the paired difference of every
row against the reference row on the same mixtures or movements (``--reference default``: the current default).

A study chooses a default, so it never sees the test data. It has two modes, one per task:

``--task speech`` (the default): scored on the **validation split**
    (validation speakers, the validation part of the noise). ``eval_split=validation`` is always passed, last.
``--task synergy``: scored on **held-out training repetitions**
    Synergies are fitted on repetitions 1, 3, 4, 6, 7 of each movement and their VAF is scored on repetitions
    8 and 9 (``task=synergy data.train_repetitions=[1,3,4,6,7] data.test_repetitions=[8,9]``, always passed,
    last): training repetitions of the Ninapro protocol held out from the fit, never its test repetitions 2, 5,
    10 that Figure 2 reports.

In both modes a ``--set`` or ``--vary`` of ``eval_split``, ``task``, ``experiment`` or a ``train_repetitions`` /
``test_repetitions`` key is refused, in any spelling Hydra reads (``+eval_split``, ``++data.eval_split``,
``~eval_split``, ``task@_global_``, ...), and the table is refused (exit status 2, nothing written) when any job
of the sweep folder was scored on another split, or fitted on or scored a test repetition.

``OUT/study.json`` records the grid of the first run into ``OUT``; a later run with another grid (other seeds,
values or fixed overrides) is refused, since the job folders ``OUT/sweep/<n>`` are numbered by the grid: use
another ``--out``, or delete ``OUT`` to start afresh. A rerun of the same grid resumes it (finished jobs are not
run again, :mod:`vaenmf.tasks.jobdir`).

Examples (``scripts/studies.py`` runs every study of the README's "Choices measured" through these functions)::

    python scripts/study.py --out outputs/studies/vae_likelihood_sampler --method vae_nmf_mu --seeds 0 \\
        --vary dictionary.system.likelihood=gaussian,poisson,exponential \\
        --vary dictionary.system.sampler=rsvi,implicit --set data.n_validation_utterances=8 --reference default
    python scripts/study.py --task synergy --out outputs/studies/vae_penalty_synergy --method vae_nmf \\
        --vary dictionary.system.penalty_weight=1,1e3,1e4,1e5 --reference dictionary.system.penalty_weight=1e4
    python scripts/study.py --out ... --vary ... --table-only   # rebuild the table from the sweep
    python scripts/study.py ... --dry-run                        # print the command
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
PROG = "study.py"
#: The split every speech study is scored on, and the override that says so (always the last one passed).
STUDY_SPLIT = "validation"
SPLIT_OVERRIDE = f"eval_split={STUDY_SPLIT}"
#: Synergy studies: the repetitions the synergies are fitted on, the held-out repetitions their VAF is scored
#: on (both training repetitions of the Ninapro protocol), and the protocol's test repetitions, which a study
#: never sees (conf/data/emg_demo.yaml and ninapro_db1.yaml: ``test_repetitions``).
SYNERGY_FIT_REPETITIONS = (1, 3, 4, 6, 7)
SYNERGY_HELDOUT_REPETITIONS = (8, 9)
SYNERGY_TEST_REPETITIONS = (2, 5, 10)
SYNERGY_OVERRIDES = (
    "task=synergy",
    f"data.train_repetitions=[{','.join(map(str, SYNERGY_FIT_REPETITIONS))}]",
    f"data.test_repetitions=[{','.join(map(str, SYNERGY_HELDOUT_REPETITIONS))}]",
)
#: The overrides that make a command a study's, per task: always the last ones of the command.
LAST_OVERRIDES = {"speech": (SPLIT_OVERRIDE,), "synergy": SYNERGY_OVERRIDES}
#: Keys a study's --set/--vary may not touch, in both tasks: any key whose last part is one of these...
PROTECTED_LEAVES = ("eval_split", "train_repetitions", "test_repetitions")
#: ... and these whole keys or groups (a task or an experiment file would bring its own split or grid).
PROTECTED_KEYS = ("task", "experiment")
#: Keys the study sets from its own options.
OWN_OPTIONS = {"method": "--method", "seed": "--seeds", "noise": "--noise"}
#: Overrides that say how the sweep runs, not what it computes (not part of the recorded grid, not composed).
LAUNCH_PREFIXES = ("launcher=", "hydra.", "hydra/")
#: Where the studies keep their fitted dictionaries (one cache for all of them: keyed by the frames, the
#: dictionary config and the seed, so a dictionary is fitted once for every study and job that needs it).
DEFAULT_CACHE = REPO_ROOT / "outputs" / "studies" / "cache"
#: ``--reference default``: the current default's values.
DEFAULT_WORD = "default"


class StudyError(Exception):
    """A study that cannot run or be tabulated as asked (one line; exit status 2)."""


def _parse_override(item: str) -> Any:
    """Hydra's own reading of ``item`` (:class:`hydra.core.override_parser.types.Override`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_override(item)
    except HydraException as err:
        raise StudyError(f"{item!r} is not a Hydra override: {str(err).splitlines()[0]}") from None


def override_key(item: str) -> str:
    """The config key (or group) a Hydra override ``[+|++|~]KEY[@PACKAGE][=VALUE]`` sets, as Hydra reads it, with
    ``/`` as ``.``; falls back to the text before ``=`` when Hydra cannot parse the override."""
    try:
        key = str(_parse_override(item).key_or_group)
    except StudyError:
        key = item.split("=", 1)[0].strip().lstrip("+~").split("@", 1)[0]
    return key.strip().strip("'\"").strip("/").replace("/", ".")


def protected(item: str) -> str | None:
    """The protected key an override sets (``eval_split``, ``task``, ...), or None."""
    key = override_key(item).lower()
    leaf = key.split(".")[-1]
    if leaf in PROTECTED_LEAVES:
        return leaf
    if key in PROTECTED_KEYS:
        return key
    return None


def refusal(task: str, key: str) -> str:
    """Why an override of ``key`` is refused."""
    if task == "speech":
        why = (
            f"a speech study is scored on the {STUDY_SPLIT} split only; {SPLIT_OVERRIDE} is always passed, last, "
            "and cannot be overridden"
        )
    else:
        why = (
            f"a synergy study is scored on held-out training repetitions only ({' '.join(SYNERGY_OVERRIDES)} are "
            f"always passed, last; never the test repetitions {list(SYNERGY_TEST_REPETITIONS)})"
        )
    return f"{why}: {key} cannot be set (use --task for the task; a study is one method's grid, not an experiment)"


def grid_values(item: str) -> list[str]:
    """The values a ``--vary KEY=V1,V2`` sweeps, as Hydra spells them (``1e4`` -> ``10000.0``)."""
    override = _parse_override(item)
    if override.is_sweep_override():
        return [str(v) for v in override.sweep_string_iterator()]
    return [str(override.get_value_element_as_str())]


def _same(a: Any, b: Any) -> bool:
    from vaenmf.report.study import _same_value

    return _same_value(a, b)


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in str(text).split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The study's options, every one checked before anything runs (``parser.error``: exit status 2)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="study folder (sweep, table.md, table.json)")
    parser.add_argument(
        "--task",
        choices=("speech", "synergy"),
        default="speech",
        help="speech: scored on the validation split; synergy: on held-out training repetitions",
    )
    parser.add_argument("--method", default="vae_nmf", help="the method (conf/method/) the study tunes")
    parser.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2", help="a varied key")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a fixed override")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--noise", default=None, help="noise condition(s), comma-separated (speech; factory)")
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the row every other row is compared with (paired difference): one KEY=VALUE per varied key, or "
        "'default' for the current default",
    )
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="dictionary cache (default: %(default)s)"
    )
    parser.add_argument(
        "--extra", action="append", default=[], metavar="KEY", help="metrics.json key to average (speech)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="jobs at a time (launcher=parallel when > 1)")
    parser.add_argument("--title", default=None, help="table title (default: the method and the varied keys)")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from an existing sweep")
    parser.add_argument("--dry-run", action="store_true", help="print the Hydra command and stop")
    args = parser.parse_args(argv)
    try:
        check_args(args)
    except StudyError as err:
        parser.error(str(err))
    return args


def check_args(args: argparse.Namespace) -> None:
    """Refuse what would make the command score anything but the study's split, or a grid that cannot run.

    Raises:
        StudyError: One line saying what is wrong.
    """
    for item in [*args.vary, *args.set]:
        key = protected(item)
        if key is not None:
            raise StudyError(f"{item!r}: {refusal(args.task, key)}")
    for item in [*args.vary, *args.set, *(r for r in args.reference if r != DEFAULT_WORD)]:
        if "=" not in item or item.startswith("="):
            raise StudyError(f"{item!r} is not KEY=VALUE")
    for item in [*args.vary, *args.set]:
        key = override_key(item)
        if key in OWN_OPTIONS:
            raise StudyError(f"{item!r}: set {key} with {OWN_OPTIONS[key]}")
    for item in args.set:
        if _parse_override(item).is_sweep_override():
            raise StudyError(f"--set {item!r} sweeps several values: use --vary for a varied key")
    if not args.vary:
        raise StudyError("a study varies at least one key: --vary KEY=V1,V2")
    if not (REPO_ROOT / "conf" / "method" / f"{args.method}.yaml").is_file():
        raise StudyError(f"--method {args.method!r}: no conf/method/{args.method}.yaml")
    seeds = _split_list(args.seeds)
    if not seeds or not all(re.fullmatch(r"-?\d+", s) for s in seeds):
        raise StudyError(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. 0,1,2")
    if args.task == "synergy":
        if args.noise is not None:
            raise StudyError("--noise is a speech setting; a synergy study has no noise")
        if args.extra:
            raise StudyError("--extra is a speech setting; a synergy table shows the synergies' statistics")
    elif not _split_list(args.noise or "factory") or not all(
        re.fullmatch(r"[\w.-]+", n) for n in _split_list(args.noise or "factory")
    ):
        raise StudyError(f"--noise {args.noise!r}: expected comma-separated noise conditions")
    if args.jobs < 1:
        raise StudyError(f"--jobs must be >= 1, got {args.jobs}")
    grid = {override_key(item): grid_values(item) for item in args.vary}
    if len(grid) != len(args.vary):
        raise StudyError("a key is varied twice: give it once, --vary KEY=V1,V2")
    references = [r for r in args.reference if r != DEFAULT_WORD]
    if references and len(references) != len(args.reference):
        raise StudyError("--reference default stands alone: it is the current value of every varied key")
    given = {override_key(item): item.split("=", 1)[1].strip() for item in references}
    for key, value in given.items():
        if key not in grid:
            raise StudyError(f"--reference {key}={value}: the study does not vary {key!r}")
        if not any(_same(v, value) for v in grid[key]):
            raise StudyError(
                f"--reference {key}={value}: not among the values studied ({','.join(grid[key])})"
            )
    if given and set(given) != set(grid):
        missing = sorted(set(grid) - set(given))
        raise StudyError(f"--reference gives no value for {', '.join(missing)}: one per varied key")


def seeds_of(args: argparse.Namespace) -> list[str]:
    return _split_list(args.seeds)


def noises_of(args: argparse.Namespace) -> list[str]:
    """The study's noise conditions (none for synergies)."""
    return [] if args.task == "synergy" else _split_list(args.noise or "factory")


def varied_keys(args: argparse.Namespace) -> list[str]:
    return [override_key(item) for item in args.vary]


def expected_jobs(args: argparse.Namespace) -> int:
    """Jobs the multirun launches: value combinations x seeds x noises."""
    n = math.prod(len(grid_values(item)) for item in args.vary)
    return n * len(seeds_of(args)) * max(1, len(noises_of(args)))


def hydra_command(args: argparse.Namespace) -> list[str]:
    """The multirun the study runs; what makes it a study (the split, or the repetitions) comes last."""
    noise = [f"noise={','.join(noises_of(args))}"] if args.task == "speech" else []
    launch = ["launcher=parallel", f"hydra.launcher.n_jobs={args.jobs}"] if args.jobs > 1 else []
    return [
        sys.executable,
        "-m",
        "vaenmf.train",
        "-m",
        f"method={args.method}",
        *noise,
        *args.vary,
        *args.set,
        f"seed={','.join(seeds_of(args))}",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        f"hydra.sweep.dir={args.out.resolve() / 'sweep'}",
        f"paths.output_root={args.out.resolve()}",
        f"paths.cache_dir={args.cache.resolve()}",
        *launch,
        *LAST_OVERRIDES[args.task],
    ]


def grid_record(args: argparse.Namespace) -> list[str]:
    """What decides the sweep's jobs and their folders: the command's overrides, without how they are launched."""
    return [item for item in hydra_command(args)[4:] if not item.startswith(LAUNCH_PREFIXES)]


def current_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The values conf/ gives the varied keys for this method and task (with the study's fixed overrides):
    the current default, which the table marks. Keys the config does not have are left out."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    overrides = [f"method={args.method}", *(f"task={args.task}",)]
    overrides += [item for item in args.set if not item.startswith(LAUNCH_PREFIXES)]
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    out = {}
    for key in varied_keys(args):
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            out[key] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    return out


def reference_of(args: argparse.Namespace) -> dict[str, Any] | None:
    """The reference row's values: as given, or the current default (``--reference default``), spelled as in the
    grid."""
    if not args.reference:
        return None
    if args.reference == [DEFAULT_WORD]:
        defaults = current_defaults(args)
        out = {}
        for item in args.vary:
            key = override_key(item)
            if key not in defaults:
                raise StudyError(f"--reference default: conf/ has no value for {key} (method={args.method})")
            match = [v for v in grid_values(item) if _same(v, defaults[key])]
            if not match:
                raise StudyError(
                    f"--reference default: the current default {key}={defaults[key]} is not among the values "
                    f"studied ({','.join(grid_values(item))})"
                )
            out[key] = match[0]
        return out
    return {override_key(item): item.split("=", 1)[1].strip() for item in args.reference}


def check_grid(args: argparse.Namespace) -> None:
    """Refuse to run into a folder whose sweep was run with another grid (``OUT/study.json``); record it when new."""
    path = args.out / "study.json"
    grid = grid_record(args)
    if path.is_file():
        try:
            recorded = json.loads(path.read_text()).get("grid")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded != grid:
            old, new = set(recorded or []), set(grid)
            raise StudyError(
                f"{args.out} holds a study of another grid (only there: {sorted(old - new)}; only here: "
                f"{sorted(new - old)}); its job folders belong to that grid: use another --out, or delete "
                f"{args.out} to start afresh"
            )
        return
    from vaenmf.atomic import write_text_atomic

    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"grid": grid}, indent=2) + "\n")


def run_sweep(args: argparse.Namespace) -> int:
    """Run the multirun (into ``OUT/sweep``); returns its exit status."""
    check_grid(args)
    env = {**os.environ, "VAENMF_ROOT": str(REPO_ROOT)}
    return subprocess.run(hydra_command(args), cwd=REPO_ROOT, env=env).returncode


def write_table(args: argparse.Namespace) -> list[Path]:
    """Tabulate ``OUT/sweep`` into ``OUT/table.md`` and ``OUT/table.json``.

    Raises:
        StudyError: If the sweep holds a job scored on another split (speech) or one that fitted on or scored a
            test repetition (synergy), or cannot be read.
    """
    from vaenmf.errors import VaenmfError
    from vaenmf.report.jobs import load_jobs
    from vaenmf.report.study import write_study_report

    command = hydra_command(args)
    keys = varied_keys(args)
    title = args.title or f"Study: method={args.method}, varying {', '.join(keys)}"
    notes = [f"Command: {shlex.join(['vaenmf-train', *command[3:]])}"]
    try:
        default: dict[str, Any] | None = current_defaults(args)
    except Exception as err:  # the table is still worth writing; say why nothing is marked
        default = None
        notes.append(f"Current default not marked: composing conf/ failed ({type(err).__name__}: {err})")
    if default:
        notes.append(
            "Current default (conf/): " + ", ".join(f"{k}={v}" for k, v in default.items()) + " (marked)"
        )
    try:
        return write_study_report(
            load_jobs([args.out / "sweep"]),
            keys,
            args.out,
            title,
            args.extra,
            notes,
            require_split=STUDY_SPLIT if args.task == "speech" else None,
            reference=reference_of(args),
            heldout_forbidden=SYNERGY_TEST_REPETITIONS if args.task == "synergy" else None,
            default=default or None,
            meta={"grid": grid_record(args), "expected_jobs": expected_jobs(args)},
        )
    except VaenmfError as err:
        raise StudyError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    """The whole study: the sweep (unless ``--table-only``), then its table. Returns 0, 1 (some jobs failed; the
    table marks them) or 2 (the study was refused: nothing run, or no table written)."""
    try:
        reference_of(args)  # a reference the grid does not have is refused before anything runs
        rc = 0 if args.table_only else run_sweep(args)
        written = write_table(args)
    except StudyError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 1 if rc else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(shlex.join(hydra_command(args)[2:]), flush=True)
    if args.dry_run:
        return 0
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
