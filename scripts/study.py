"""A study that chooses a default: one multirun varying some config keys of one method, then its table.

Runs ``vaenmf-train -m method=METHOD KEY=V1,V2 ... seed=SEEDS eval_split=validation`` (CSV logging, every job
under ``OUT/sweep``), then writes ``OUT/table.md`` and ``OUT/table.json``: one row per value combination of the
varied keys, SDR per SNR and on average, PESQ-NB and STOI, each the mean over noises and seeds with its 95%
interval (``vaenmf.report.study``).

A study chooses a default, so it never sees the test split: every job is scored on the validation split
(``eval_split=validation`` is always passed, last), a ``--set`` or ``--vary`` of ``eval_split`` (in any
spelling: ``+eval_split``, ``data.eval_split``, ...) is refused, and the table is refused (exit status 2) when a
job of the sweep was scored on another split.

Example (the VAE-NMF likelihood x sampler study of the README)::

    python scripts/study.py --out outputs/studies/vae_choices --method vae_nmf --seeds 0,1 \\
        --vary dictionary.system.likelihood=gaussian,poisson,exponential \\
        --vary dictionary.system.sampler=rsvi,implicit --set data.n_test_utterances=8
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
#: The split every study is scored on, and the override that says so (always the last one passed).
STUDY_SPLIT = "validation"
SPLIT_OVERRIDE = f"eval_split={STUDY_SPLIT}"


def _override_key(item: str) -> str:
    """The config key of a Hydra override ``[+|++|~]KEY=VALUE``."""
    return item.split("=", 1)[0].strip().lstrip("+~")


def _sets_split(item: str) -> bool:
    """Whether an override sets the split a job is scored on (``eval_split`` at any depth)."""
    return _override_key(item).split(".")[-1] == "eval_split"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="study folder (sweep, table.md, table.json)")
    parser.add_argument("--method", default="vae_nmf", help="the method (conf/method/) the study tunes")
    parser.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2", help="a varied key")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a fixed override")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--noise", default="factory", help="noise condition(s), comma-separated")
    parser.add_argument(
        "--extra", action="append", default=[], metavar="KEY", help="metrics.json key to average"
    )
    parser.add_argument("--title", default=None, help="table title (default: the method and the varied keys)")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from an existing sweep")
    parser.add_argument("--dry-run", action="store_true", help="print the Hydra command and stop")
    args = parser.parse_args(argv)
    for item in [*args.vary, *args.set]:
        if "=" not in item or item.startswith("="):
            parser.error(f"{item!r} is not KEY=VALUE")
        if _sets_split(item):
            parser.error(
                f"{item!r}: a study that chooses a default is scored on the {STUDY_SPLIT} split only; "
                f"{SPLIT_OVERRIDE} is always passed and cannot be overridden"
            )
    if not args.vary:
        parser.error("a study varies at least one key: --vary KEY=V1,V2")
    return args


def hydra_command(args: argparse.Namespace) -> list[str]:
    """The multirun the study runs."""
    return [
        sys.executable,
        "-m",
        "vaenmf.train",
        "-m",
        f"method={args.method}",
        f"noise={args.noise}",
        *args.vary,
        *args.set,
        f"seed={args.seeds}",
        "logger=csv",
        f"hydra.sweep.dir={args.out.resolve() / 'sweep'}",
        f"paths.output_root={args.out.resolve()}",
        SPLIT_OVERRIDE,
    ]


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
            require_split=STUDY_SPLIT,
        )
    except VaenmfError as err:
        print(f"study.py: error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 1 if rc else 0


if __name__ == "__main__":
    raise SystemExit(main())
