"""`make studies`: every study that chooses a default (README, "Choices measured"), one after another.

Each study is one ``scripts/study.py`` run (this script calls its functions: the same checks, the same command,
the same table), into ``OUT/<name>/`` (``sweep/``, ``table.md``, ``table.json``), all of them sharing one
dictionary cache (``OUT/cache``: a dictionary that several studies fit alike, such as the VAE-NMF dictionaries of
the current defaults, is fitted once). Every speech study is scored on the **validation split** (validation
speakers, the validation part of the noise; ``eval_split=validation`` comes last in its command) and the synergy
study on **held-out training repetitions** (fitted on repetitions 1, 3, 4, 6, 7, VAF on 8, 9; never the test
repetitions 2, 5, 10). Nothing here scores the test split, and nothing changes a default: each table marks the
current default (what conf/ composes) and compares every other row with it (paired differences on the same
mixtures or movements); choosing is left to whoever reads the tables.

All studies run on the demo corpora, factory noise, seed 0 (``--seeds 0,1,2`` for more), with 8 validation
utterances per SNR (``--utterances``). A study whose ``table.json`` is complete (every job of its grid finished,
the same grid) is skipped; any other is run, and a rerun resumes it (finished jobs are not run again). A folder
that holds a study of another grid (other seeds, say) is refused before anything runs: delete it, or use another
``--out``.

Usage::

    python scripts/studies.py --list                      # the studies and their grids
    python scripts/studies.py                             # all of them (make studies)
    python scripts/studies.py --only nmf_mu_iterations,drnn_epochs --seeds 0,1
    python scripts/studies.py --dry-run                   # the commands only
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

REPO_ROOT = Path(__file__).resolve().parents[1]
PROG = "studies.py"


def _load_study() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vaenmf_study_script", Path(__file__).with_name("study.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


study = _load_study()

#: Validation utterances per SNR of every speech study (the demo has 24: 2 voices x 12 utterances).
UTTERANCES = 8


@dataclass(frozen=True)
class Study:
    """One study: a ``scripts/study.py`` run.

    Attributes:
        name: Its folder under ``OUT`` and its ``--only`` name.
        what: The choice it informs (one line).
        method: The method (conf/method/) it tunes.
        vary: Its grid, ``KEY=V1,V2`` per varied key (every value combination is a row).
        task: ``speech`` (validation split) or ``synergy`` (held-out training repetitions).
        fixed: Fixed overrides (beyond the number of validation utterances of a speech study).
        extra: ``metrics.json`` keys averaged per row (speech).
    """

    name: str
    what: str
    method: str
    vary: tuple[str, ...]
    task: str = "speech"
    fixed: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()


#: The dictionaries' negative-weight statistics (VAE-NMF: what clipping max(W, 0) discards).
NEGATIVE_WEIGHTS = tuple(
    f"dictionaries.{d}.{s}" for d in ("speech", "noise") for s in ("neg_mass", "neg_fraction")
)
PENALTY_WEIGHTS = "dictionary.system.penalty_weight=1,1e3,1e4,1e5"

#: Every study of the README's "Choices measured", in the order they run.
STUDIES: tuple[Study, ...] = (
    Study(
        "vae_likelihood_sampler",
        "VAE-NMF's likelihood and Gamma sampler (MU activations: nothing trained on mixtures)",
        "vae_nmf_mu",
        (
            "dictionary.system.likelihood=gaussian,poisson,exponential",
            "dictionary.system.sampler=rsvi,implicit",
        ),
        extra=NEGATIVE_WEIGHTS,
    ),
    Study(
        "vae_likelihood_sampler_dnn",
        "VAE-NMF's likelihood and Gamma sampler with the encoding DNN's activations (the paper's VAE-NMF column)",
        "vae_nmf",
        (
            "dictionary.system.likelihood=gaussian,poisson,exponential",
            "dictionary.system.sampler=rsvi,implicit",
        ),
    ),
    Study(
        "vae_noise_var",
        "VAE-NMF's Gaussian observation variance sigma^2 (MU activations)",
        "vae_nmf_mu",
        ("dictionary.system.noise_var=0.1,0.3,1",),
    ),
    Study(
        "vae_noise_var_dnn",
        "VAE-NMF's sigma^2 with the encoding DNN's activations (the paper's VAE-NMF column, which decides it)",
        "vae_nmf",
        ("dictionary.system.noise_var=0.1,0.3",),
        extra=NEGATIVE_WEIGHTS,
    ),
    Study(
        "vae_penalty_speech",
        "VAE-NMF's nonnegativity weight gamma on speech (MU activations), with the dictionaries' negative weights",
        "vae_nmf_mu",
        (PENALTY_WEIGHTS,),
        extra=NEGATIVE_WEIGHTS,
    ),
    Study(
        "vae_penalty_synergy",
        "VAE-NMF's nonnegativity weight gamma on synergies (demo EMG, movements 1, 3, 5, 7)",
        "vae_nmf",
        (PENALTY_WEIGHTS,),
        task="synergy",
        fixed=("data.movements=[1,3,5,7]",),
    ),
    Study(
        "dnmf_beta_mask",
        "DNMF's divergence beta and the mask power p it is trained for and applied with",
        "dnmf",
        ("reconstruction.system.beta=1,2", "activations.mask_power=1,2"),
    ),
    Study(
        "dnmf_iterations",
        "DNMF's multiplicative updates of the reconstruction bases",
        "dnmf",
        ("reconstruction.mu_iterations=50,100,200",),
    ),
    Study("drnn_epochs", "The DRNN's training epochs", "drnn", ("network.epochs=100,200,400",)),
    Study(
        "nmf_mu_iterations",
        "NMF's multiplicative updates per dictionary",
        "nmf",
        ("dictionary.mu_iterations=50,100,200,400",),
    ),
    Study(
        "nmf_mu_iterations_dnmf",
        "NMF's multiplicative updates per dictionary, as DNMF's analysis bases",
        "dnmf",
        ("dictionary.mu_iterations=50,100,200",),
    ),
)
BY_NAME = {s.name: s for s in STUDIES}


def fail(message: str) -> NoReturn:
    """One error line on stderr, exit status 2."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def study_argv(
    spec: Study,
    out: Path,
    seeds: str = "0",
    cache: Path | None = None,
    utterances: int = UTTERANCES,
    jobs: int = 1,
    overrides: Sequence[str] = (),
) -> list[str]:
    """The ``scripts/study.py`` arguments of one study (its reference: the current default)."""
    argv = ["--out", str(out / spec.name), "--task", spec.task, "--method", spec.method, "--seeds", seeds]
    argv += ["--cache", str(cache or out / "cache"), "--jobs", str(jobs), "--reference", study.DEFAULT_WORD]
    argv += ["--title", f"{spec.name}: {spec.what}"]
    for item in spec.vary:
        argv += ["--vary", item]
    fixed = [*spec.fixed, *overrides]
    if spec.task == "speech":
        fixed.insert(0, f"data.n_validation_utterances={utterances}")
    for item in fixed:
        argv += ["--set", item]
    for item in spec.extra:
        argv += ["--extra", item]
    return argv


def study_args(spec: Study, out: Path, **kwargs: Any) -> argparse.Namespace:
    """The parsed ``scripts/study.py`` options of one study (every check of study.py applied)."""
    return study.parse_args(study_argv(spec, out, **kwargs))


def is_complete(args: argparse.Namespace) -> bool:
    """Whether the study's ``table.json`` holds every job of this very grid, all finished."""
    path = args.out / "table.json"
    if not path.is_file():
        return False
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    rows = record.get("rows") or []
    return (
        record.get("grid") == study.grid_record(args)
        and record.get("n_jobs_ok") == study.expected_jobs(args)
        and bool(rows)
        and all(r.get("status") == "ok" for r in rows)
    )


def other_grid(args: argparse.Namespace) -> bool:
    """Whether the study's folder already holds a sweep of another grid (study.py would refuse it)."""
    path = args.out / "study.json"
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("grid") != study.grid_record(args)
    except (OSError, ValueError, AttributeError):
        return True


def parse_only(text: str | None) -> list[Study]:
    if text is None:
        return list(STUDIES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        fail(
            f"--only {text!r}: unknown study {', '.join(map(repr, unknown)) or '(none given)'}; choose from "
            f"{', '.join(BY_NAME)}"
        )
    return [BY_NAME[n] for n in names]


def describe(spec: Study, args: argparse.Namespace) -> str:
    """A study's entry of ``--list``: what it informs, its grid, the current default, its size."""
    try:
        default = study.reference_of(args) or {}
        current = ", ".join(f"{k}={v}" for k, v in default.items())
    except study.StudyError as err:
        current = f"?? {err}"
    scored = (
        "held-out training repetitions 8, 9 (fit on 1, 3, 4, 6, 7)"
        if spec.task == "synergy"
        else f"validation split ({', '.join(study.noises_of(args))} noise)"
    )
    lines = [
        f"{spec.name}: {spec.what}",
        f"    method={spec.method}, task={spec.task}; scored on the {scored}",
        *(f"    vary  {item}" for item in spec.vary),
        *(f"    set   {item}" for item in args.set),
        f"    current default (the reference row): {current}",
        f"    {study.expected_jobs(args)} job(s) with seeds {args.seeds}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "studies", help="%(default)s")
    parser.add_argument("--only", default=None, metavar="NAME[,NAME]", help="run these studies only")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default %(default)s)")
    parser.add_argument(
        "--utterances",
        type=int,
        default=UTTERANCES,
        help="validation utterances per SNR of the speech studies (default %(default)s)",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="jobs at a time within a study (launcher=parallel)"
    )
    parser.add_argument("--cache", type=Path, default=None, help="dictionary cache (default OUT/cache)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a fixed override for every study"
    )
    parser.add_argument("--list", action="store_true", help="list the studies and their grids")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    if args.utterances < 1:
        fail(f"--utterances must be >= 1, got {args.utterances}")
    chosen = parse_only(args.only)
    out = args.out.resolve()
    options = {
        "seeds": args.seeds,
        "cache": args.cache.resolve() if args.cache else None,
        "utterances": args.utterances,
        "jobs": args.jobs,
        "overrides": args.set,
    }
    # Every study's options pass study.py's checks before the first one runs.
    plans = [(spec, study_args(spec, out, **options)) for spec in chosen]
    if args.list:
        print("\n\n".join(describe(spec, a) for spec, a in plans))
        return 0
    clash = [a.out for _, a in plans if other_grid(a)]
    if clash and not args.dry_run:
        fail(
            f"{', '.join(map(str, clash))} hold(s) a study of another grid (other seeds, values or overrides); "
            "delete it, or use another --out"
        )
    for spec, a in plans:
        try:
            study.reference_of(a)  # the current default must be one of the grid's values
        except study.StudyError as err:
            fail(f"{spec.name}: {err}")
    start = time.time()
    outcome: dict[str, str] = {}
    for spec, a in plans:
        command = study.hydra_command(a)
        state = "complete: skipped" if is_complete(a) else "to run"
        print(f"\n=== {spec.name} ({state}): {' '.join(command[2:])}", flush=True)
        if args.dry_run or state != "to run":
            outcome[spec.name] = "dry run" if args.dry_run else "skipped (complete)"
            continue
        began = time.time()
        rc = study.run(a)
        outcome[spec.name] = {0: "ok", 1: "some jobs failed (the table marks them)"}.get(rc, "refused")
        outcome[spec.name] += f", {time.time() - began:.0f} s"
    if args.dry_run:
        return 0
    print(f"\n{PROG}: {len(plans)} studies in {time.time() - start:.0f} s; tables in {out}/<name>/table.md")
    for name, text in outcome.items():
        print(f"  {name}: {text}")
    return 0 if all(t.startswith(("ok", "skipped")) for t in outcome.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
