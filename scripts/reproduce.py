"""`make reproduce`: one Hydra multirun per paper artefact, then the report beside the paper's numbers.

``vaenmf-train -m experiment=table1``, ``experiment=table2`` and ``experiment=fig2_vaf`` (each experiment file
declares its whole grid: every column and ablation row, every noise), then ``vaenmf-report`` over the three
sweeps. With no data this runs on the embedded demo corpora; with ``DATA_ROOT`` (or ``--data-root``) pointing at
TIMIT, NOISEX-92 and Ninapro DB1 it runs the real study. One failed job does not stop the others, and the
report marks its cells.

``--jobs N`` (default: one per CPU) runs ``N`` jobs at a time: the three sweeps start together with
``launcher=parallel`` (:mod:`vaenmf.cluster.local`) and share ``N`` machine-wide job slots, each job on
``CPUs / N`` threads, and jobs that share fitted dictionaries wait for the first of them. Every job computes
what it computes in the serial run (``--jobs 1``: the sweeps one after another, one job at a time), so the
tables are the same; each sweep's lines are prefixed with its name.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

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


def default_jobs() -> int:
    """One job per CPU this process may use (:func:`vaenmf.metrics.pool.job_cpus`: ``SLURM_CPUS_PER_TASK`` in a
    SLURM allocation, else the CPU affinity)."""
    from vaenmf.metrics.pool import job_cpus

    return job_cpus()


def _relay(stream: IO[bytes], prefix: str, lock: threading.Lock) -> None:
    """Copy a sweep's output to ours line by line, each line prefixed with the sweep's name."""
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\r\n")
        with lock:
            sys.stdout.write(f"{prefix}{line}\n")
            sys.stdout.flush()
    stream.close()


def run_concurrently(commands: dict[str, list[str]], env: dict[str, str]) -> dict[str, int]:
    """Start every sweep at once; relay their output with a ``[name]`` prefix; return their exit codes."""
    lock = threading.Lock()
    processes: dict[str, subprocess.Popen[bytes]] = {}
    relays = []
    width = max(len(name) for name in commands)
    try:
        for name, command in commands.items():
            process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            processes[name] = process
            assert process.stdout is not None
            relay = threading.Thread(
                target=_relay, args=(process.stdout, f"[{name:<{width}}] ", lock), daemon=True
            )
            relay.start()
            relays.append(relay)
        codes = {name: process.wait() for name, process in processes.items()}
    finally:
        for process in processes.values():  # Ctrl-C reached them too; wait for their records
            if process.poll() is None:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.terminate()
    for relay in relays:
        relay.join(timeout=5)
    return codes


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
        "--jobs",
        type=int,
        default=None,
        help="jobs at a time (default: one per CPU); 1 runs the sweeps one after another, one job at a time",
    )
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
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        parser.error(f"--jobs must be >= 1, got {jobs}")
    experiments = [e for e in args.experiments.split(",") if e]
    for experiment in experiments:
        if experiment not in EXPERIMENTS:
            parser.error(f"unknown experiment {experiment!r}; choose from {', '.join(EXPERIMENTS)}")
    commands = {}
    for experiment in experiments:
        data = (
            [f"data={EXPERIMENTS[experiment]}", f"paths.data_root={args.data_root}"] if args.data_root else []
        )
        launcher = ["launcher=parallel", f"hydra.launcher.n_jobs={jobs}"] if jobs > 1 else []
        commands[experiment] = [
            sys.executable,
            "-m",
            "vaenmf.train",
            "-m",
            f"experiment={experiment}",
            f"seed={args.seeds}",
            f"hydra.sweep.dir={sweeps / experiment}",
            f"paths.output_root={out}",
            *launcher,
            *data,
            *overrides_for(experiment, args.overrides),
        ]
    failed = []
    start = time.time()
    if jobs > 1 and len(commands) > 1:
        slots = out / f".job-slots-{os.getpid()}"
        shutil.rmtree(slots, ignore_errors=True)
        print(f"\n=== {', '.join(commands)} at once, {jobs} jobs at a time (slots in {slots})", flush=True)
        for experiment, command in commands.items():
            print(f"=== {experiment}: {' '.join(command[2:])}", flush=True)
        try:
            codes = run_concurrently(commands, {**env, "VAENMF_JOB_SLOTS": str(slots)})
        finally:
            shutil.rmtree(slots, ignore_errors=True)
        for experiment, code in codes.items():
            if code != 0:
                failed.append(experiment)
                print(f"!!! some jobs of {experiment} failed; the report marks their cells", flush=True)
    else:
        for experiment, command in commands.items():
            print(f"\n=== {experiment}: {' '.join(command[2:])}", flush=True)
            if subprocess.run(command, cwd=REPO_ROOT, env=env).returncode != 0:
                failed.append(experiment)
                print(f"!!! some jobs of {experiment} failed; the report marks their cells", flush=True)
    sweeps_done = time.time()
    report = [sys.executable, "-m", "vaenmf.report.cli", str(sweeps), "--out", str(out)]
    print(f"\n=== report: {' '.join(report[2:])}", flush=True)
    report_rc = subprocess.run(report, cwd=REPO_ROOT, env=env).returncode
    print(
        f"\nvaenmf reproduce: finished in {time.time() - start:.0f} s (sweeps {sweeps_done - start:.0f} s, "
        f"{jobs} job(s) at a time; report {time.time() - sweeps_done:.0f} s); tables in {out}"
    )
    return 1 if failed or report_rc else 0


if __name__ == "__main__":
    raise SystemExit(main())
