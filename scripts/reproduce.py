"""`make reproduce`: one Hydra multirun per paper artefact, then the report beside the paper's numbers.

``vaenmf-train -m experiment=table1``, ``experiment=table2`` and ``experiment=fig2_vaf`` (each experiment file
declares its whole grid: every column and ablation row, every noise), then ``vaenmf-report`` over the three
sweeps. With no data this runs on the embedded demo corpora; with ``DATA_ROOT`` (or ``--data-root``) pointing at
TIMIT, NOISEX-92 and Ninapro DB1 it runs the real study. One failed job does not stop the others, and the
report marks its cells.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Each experiment (conf/experiment/) and the data config of its real-corpus run (``--data-root``).
EXPERIMENTS = {"table1": "speech_timit", "table2": "speech_timit", "fig2_vaf": "ninapro_db1"}


#: Override prefixes that name a group of experiments.
PREFIX_GROUPS = {"speech": ("table1", "table2")}


def overrides_for(experiment: str, overrides: list[str]) -> list[str]:
    """The overrides that apply to ``experiment``: unprefixed ones, and ``PREFIX:KEY=VALUE`` whose prefix names it.

    Speech and synergy jobs have different config keys (``data.n_test_utterances`` exists only for speech data),
    so an override meant for one kind would break the other's sweep.
    """
    selected = []
    for item in overrides:
        prefix, sep, rest = item.partition(":")
        if not sep or "=" in prefix:  # no prefix (a value may itself contain ':')
            selected.append(item)
        elif experiment == prefix or experiment in PREFIX_GROUPS.get(prefix, ()):
            selected.append(rest)
    return selected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "reproduce")
    parser.add_argument(
        "--data-root", default=os.environ.get("DATA_ROOT"), help="real corpora (default: demo)"
    )
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS), help="comma-separated subset")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="extra Hydra overrides: KEY=VALUE for every job, or PREFIX:KEY=VALUE for some only, with PREFIX an "
        "experiment (table1, table2, fig2_vaf) or 'speech' (both tables); e.g. speech:data.n_test_utterances=4 "
        "fig2_vaf:data.subjects=[1]",
    )
    args = parser.parse_args(argv)

    known = set(EXPERIMENTS) | set(PREFIX_GROUPS)
    for item in args.overrides:
        prefix, sep, _ = item.partition(":")
        if sep and "=" not in prefix and prefix not in known:
            parser.error(
                f"override {item!r}: unknown prefix {prefix!r}; use one of {', '.join(sorted(known))}"
            )
    out = args.out.resolve()
    sweeps = out / "sweeps"
    env = {**os.environ, "VAENMF_ROOT": str(REPO_ROOT)}
    print(
        f"vaenmf reproduce: corpora = {'real, under ' + args.data_root if args.data_root else 'embedded demo'}"
    )
    failed = []
    start = time.time()
    for experiment in [e for e in args.experiments.split(",") if e]:
        if experiment not in EXPERIMENTS:
            parser.error(f"unknown experiment {experiment!r}; choose from {', '.join(EXPERIMENTS)}")
        data = (
            [f"data={EXPERIMENTS[experiment]}", f"paths.data_root={args.data_root}"] if args.data_root else []
        )
        command = [
            sys.executable,
            "-m",
            "vaenmf.train",
            "-m",
            f"experiment={experiment}",
            f"seed={args.seeds}",
            f"hydra.sweep.dir={sweeps / experiment}",
            f"paths.output_root={out}",
            *data,
            *overrides_for(experiment, args.overrides),
        ]
        print(f"\n=== {experiment}: {' '.join(command[2:])}", flush=True)
        if subprocess.run(command, cwd=REPO_ROOT, env=env).returncode != 0:
            failed.append(experiment)
            print(f"!!! some jobs of {experiment} failed; the report marks their cells", flush=True)
    report = [sys.executable, "-m", "vaenmf.report.cli", str(sweeps), "--out", str(out)]
    print(f"\n=== report: {' '.join(report[2:])}", flush=True)
    report_rc = subprocess.run(report, cwd=REPO_ROOT, env=env).returncode
    print(f"\nvaenmf reproduce: finished in {time.time() - start:.0f} s; tables in {out}")
    return 1 if failed or report_rc else 0


if __name__ == "__main__":
    raise SystemExit(main())
