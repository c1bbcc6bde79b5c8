"""A study that chooses a default: one multirun varying some config keys of one method, then its table.

Runs ``vaenmf-train -m method=METHOD KEY=V1,V2 ... seed=SEEDS`` (CSV logging, every job under ``OUT/sweep``,
the fitted dictionaries in one cache shared by all studies), then writes ``OUT/table.md`` and
``OUT/table.json``: one row per value combination of the varied keys, each cell the mean over noises (speech)
or movements (synergies) and seeds with its 95% interval (``vaenmf.report.study``), and, with ``--reference``,
the paired difference of every row against the reference row on the same mixtures or movements.

A study chooses a default, so it never sees the test data. It has two modes, one per task:

``--task speech`` (the default): scored on the **validation split**
    (validation speakers, the validation part of the noise). ``eval_split=validation`` is always passed, last;
    a ``--set`` or ``--vary`` of ``eval_split`` (in any spelling: ``+eval_split``, ``data.eval_split``, ...) is
    refused, and the table is refused (exit status 2) when a job of the sweep was scored on another split.
``--task synergy``: scored on **held-out training repetitions**
    Synergies are fitted on repetitions 1, 3, 4, 6, 7 of each movement and their VAF is scored on repetitions
    8 and 9 (``data.train_repetitions=[1,3,4,6,7] data.test_repetitions=[8,9]``, always passed, last): training
    repetitions of the Ninapro protocol held out from the fit, never its test repetitions 2, 5, 10 that Figure 2
    reports. A ``--set``/``--vary`` of ``task``, ``eval_split``, ``data.train_repetitions`` or
    ``data.test_repetitions`` is refused, and so is a table with a job that fitted on or scored a test repetition.

Examples (the studies of the README's "Choices measured")::

    python scripts/study.py --out outputs/studies/vae_choices --method vae_nmf_mu --seeds 0 \\
        --vary dictionary.system.likelihood=gaussian,poisson,exponential \\
        --vary dictionary.system.sampler=rsvi,implicit --set data.n_validation_utterances=8 \\
        --reference dictionary.system.likelihood=gaussian --reference dictionary.system.sampler=rsvi
    python scripts/study.py --task synergy --out outputs/studies/penalty_emg --method vae_nmf \\
        --vary dictionary.system.penalty_weight=1,1e3,1e4,1e5 --reference dictionary.system.penalty_weight=1e4
    python scripts/study.py --out outputs/studies/vae_choices --vary ... --table-only   # rebuild the table
    python scripts/study.py ... --dry-run                                              # print the command
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
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
#: Keys a study's --set/--vary may not touch (the last part of the dotted key for eval_split, the whole key for
#: the others), per task.
PROTECTED = {
    "speech": ("eval_split",),
    "synergy": ("eval_split", "task", "data.train_repetitions", "data.test_repetitions"),
}
#: Where the studies keep their fitted dictionaries (one cache for all of them: keyed by the frames, the
#: dictionary config and the seed, so a dictionary is fitted once for every study and job that needs it).
DEFAULT_CACHE = REPO_ROOT / "outputs" / "studies" / "cache"


def _override_key(item: str) -> str:
    """The config key of a Hydra override ``[+|++|~]KEY=VALUE``."""
    return item.split("=", 1)[0].strip().lstrip("+~")


def _protected(item: str, task: str) -> str | None:
    """The protected key an override sets, or None."""
    key = _override_key(item)
    for protected in PROTECTED[task]:
        if protected == "eval_split" and key.split(".")[-1] == "eval_split":
            return protected
        if key == protected:
            return protected
    return None


def _refusal(task: str, protected: str) -> str:
    if task == "speech":
        return (
            f"a study that chooses a default is scored on the {STUDY_SPLIT} split only; "
            f"{SPLIT_OVERRIDE} is always passed and cannot be overridden"
        )
    return (
        f"a synergy study is scored on held-out training repetitions only ({' '.join(SYNERGY_OVERRIDES)} are "
        f"always passed; never the test repetitions {list(SYNERGY_TEST_REPETITIONS)}): {protected} cannot be set"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
    parser.add_argument("--noise", default="factory", help="noise condition(s), comma-separated (speech)")
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the row every other row is compared with (paired difference), one per varied key",
    )
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="dictionary cache (default: %(default)s)"
    )
    parser.add_argument(
        "--extra", action="append", default=[], metavar="KEY", help="metrics.json key to average (speech)"
    )
    parser.add_argument("--title", default=None, help="table title (default: the method and the varied keys)")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from an existing sweep")
    parser.add_argument("--dry-run", action="store_true", help="print the Hydra command and stop")
    args = parser.parse_args(argv)
    for item in [*args.vary, *args.set, *args.reference]:
        if "=" not in item or item.startswith("="):
            parser.error(f"{item!r} is not KEY=VALUE")
    for item in [*args.vary, *args.set]:
        protected = _protected(item, args.task)
        if protected is not None:
            parser.error(f"{item!r}: {_refusal(args.task, protected)}")
    if not args.vary:
        parser.error("a study varies at least one key: --vary KEY=V1,V2")
    varied = {_override_key(item) for item in args.vary}
    for item in args.reference:
        if _override_key(item) not in varied:
            parser.error(f"--reference {item!r}: the study does not vary {_override_key(item)!r}")
    return args


def hydra_command(args: argparse.Namespace) -> list[str]:
    """The multirun the study runs; what makes it a study (the split, or the repetitions) comes last."""
    noise = [] if args.task == "synergy" else [f"noise={args.noise}"]
    last = list(SYNERGY_OVERRIDES) if args.task == "synergy" else [SPLIT_OVERRIDE]
    return [
        sys.executable,
        "-m",
        "vaenmf.train",
        "-m",
        f"method={args.method}",
        *noise,
        *args.vary,
        *args.set,
        f"seed={args.seeds}",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        f"hydra.sweep.dir={args.out.resolve() / 'sweep'}",
        f"paths.output_root={args.out.resolve()}",
        f"paths.cache_dir={args.cache.resolve()}",
        *last,
    ]


def _reference(args: argparse.Namespace) -> dict[str, str] | None:
    pairs = [item.split("=", 1) for item in args.reference]
    return {_override_key(key): value for key, value in pairs} or None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = hydra_command(args)
    print(shlex.join(command[2:]), flush=True)
    if args.dry_run:
        return 0
    rc = 0
    if not args.table_only:
        env = {**os.environ, "VAENMF_ROOT": str(REPO_ROOT)}
        rc = subprocess.run(command, cwd=REPO_ROOT, env=env).returncode
    from vaenmf.errors import VaenmfError
    from vaenmf.report.jobs import load_jobs
    from vaenmf.report.study import write_study_report

    keys = [_override_key(item) for item in args.vary]
    title = args.title or f"Study: method={args.method}, varying {', '.join(keys)}"
    notes = [f"Command: {shlex.join(['vaenmf-train', *command[3:]])}"]
    try:
        written = write_study_report(
            load_jobs([args.out / "sweep"]),
            keys,
            args.out,
            title,
            args.extra,
            notes,
            require_split=STUDY_SPLIT if args.task == "speech" else None,
            reference=_reference(args),
            heldout_forbidden=SYNERGY_TEST_REPETITIONS if args.task == "synergy" else None,
        )
    except VaenmfError as err:
        print(f"study.py: error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 1 if rc else 0


if __name__ == "__main__":
    raise SystemExit(main())
