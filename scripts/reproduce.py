"""`make reproduce`: one Hydra multirun per paper artefact, then the report beside the paper's numbers.

``vaenmf-train -m experiment=table1``, ``experiment=table2`` and ``experiment=fig2_vaf`` (each experiment file
declares its whole grid: every column and ablation row, every noise), then ``vaenmf-report`` over the three
sweeps. With no data this runs on the embedded demo corpora; with ``DATA_ROOT`` (or ``--data-root``) pointing at
TIMIT, NOISEX-92 and Ninapro DB1 it runs the real study. One failed job does not stop the others, and the
report marks its cells.

``--seeds 0,1,2`` (``make reproduce SEEDS=0,1,2``) runs every job of every sweep once per seed (``seed=0,1,2``
extends each experiment's grid); the report aggregates over seeds. ``--dry-run`` prints the commands only.

W&B (the default logger, offline): every job of the three sweeps goes into one group, ``reproduce-<time of the
first run into OUT>`` (kept in ``OUT/wandb_group``, so that a rerun that resumes the study stays in it; the
environment's ``VAENMF_WANDB_GROUP`` wins), and the report adds its summary run to that group and prints the
``wandb sync`` command.

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
from typing import IO, NoReturn

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


PROG = "reproduce.py"
#: The environment variable that names the W&B group of every job (vaenmf.tracking.GROUP_ENV).
GROUP_ENV = "VAENMF_WANDB_GROUP"


def fail(message: str) -> NoReturn:
    """One error line on stderr, exit status 2."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_experiments(text: str) -> list[str]:
    """The comma-separated experiments, each checked against :data:`EXPERIMENTS` (one error line otherwise)."""
    chosen = [e.strip() for e in text.split(",") if e.strip()]
    unknown = [e for e in chosen if e not in EXPERIMENTS]
    if unknown or not chosen:
        fail(
            f"--experiments {text!r}: unknown experiment {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from {', '.join(EXPERIMENTS)}"
        )
    return chosen


def parse_seeds(text: str) -> str:
    """The comma-separated seeds as the multiruns' ``seed=`` value (one error line unless all are integers)."""
    seeds = [s.strip() for s in str(text).split(",") if s.strip()]
    if not seeds or not all(s.lstrip("-").isdigit() for s in seeds):
        fail(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2")
    return ",".join(seeds)


def wandb_group(out: Path, record: bool) -> str:
    """The W&B group of the study in ``out``: ``$VAENMF_WANDB_GROUP``, else the one ``out/wandb_group`` keeps,
    else a new ``reproduce-<time>`` (written there when ``record``)."""
    if os.environ.get(GROUP_ENV):
        return os.environ[GROUP_ENV]
    path = out / "wandb_group"
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    group = f"reproduce-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    if record:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(group + "\n")
    return group


def sweep_command(
    experiment: str,
    seeds: str,
    sweeps: Path,
    out: Path,
    data_root: str | None,
    overrides: list[str],
    jobs: int = 1,
) -> list[str]:
    """The ``vaenmf-train -m`` command of one experiment: its grid (conf/experiment/) times ``seed=<seeds>``."""
    data = [f"data={EXPERIMENTS[experiment]}", f"paths.data_root={data_root}"] if data_root else []
    return [
        sys.executable,
        "-m",
        "vaenmf.train",
        "-m",
        f"experiment={experiment}",
        f"seed={seeds}",
        f"hydra.sweep.dir={sweeps / experiment}",
        f"paths.output_root={out}",
        *(["launcher=parallel", f"hydra.launcher.n_jobs={jobs}"] if jobs > 1 else []),
        *data,
        *overrides_for(experiment, overrides),
    ]


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
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "reproduce")
    parser.add_argument(
        "--data-root", default=os.environ.get("DATA_ROOT"), help="real corpora (default: demo)"
    )
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS), help="comma-separated subset")
    parser.add_argument(
        "--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2 (every job once per seed)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="jobs at a time (default: one per CPU); 1 runs the sweeps one after another, one job at a time",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands without running them")
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
            fail(f"override {item!r}: unknown prefix {prefix!r}; use one of {', '.join(sorted(known))}")
    # Every argument is checked before the first sweep starts: a typo never runs half of the study.
    experiments = parse_experiments(args.experiments)
    seeds = parse_seeds(args.seeds)
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        fail(f"--jobs must be >= 1, got {jobs}")
    out = args.out.resolve()
    sweeps = out / "sweeps"
    group = wandb_group(out, record=not args.dry_run)
    env = {**os.environ, "VAENMF_ROOT": str(REPO_ROOT), GROUP_ENV: group}
    commands = [
        (e, sweep_command(e, seeds, sweeps, out, args.data_root, args.overrides, jobs)) for e in experiments
    ]
    report = [sys.executable, "-m", "vaenmf.report.cli", str(sweeps), "--out", str(out)]
    print(
        f"vaenmf reproduce: corpora = {'real, under ' + args.data_root if args.data_root else 'embedded demo'}; "
        f"seeds {seeds}; W&B group {group}"
    )
    if args.dry_run:
        for experiment, command in commands:
            print(f"=== {experiment}: {' '.join(command[2:])}")
        print(f"=== report: {' '.join(report[2:])}")
        return 0
    failed = []
    start = time.time()
    if jobs > 1 and len(commands) > 1:
        slots = out / f".job-slots-{os.getpid()}"
        shutil.rmtree(slots, ignore_errors=True)
        print(
            f"\n=== {', '.join(e for e, _ in commands)} at once, {jobs} jobs at a time (slots in {slots})",
            flush=True,
        )
        for experiment, command in commands:
            print(f"=== {experiment}: {' '.join(command[2:])}", flush=True)
        try:
            codes = run_concurrently(dict(commands), {**env, "VAENMF_JOB_SLOTS": str(slots)})
        finally:
            shutil.rmtree(slots, ignore_errors=True)
        for experiment, code in codes.items():
            if code != 0:
                failed.append(experiment)
                print(f"!!! some jobs of {experiment} failed; the report marks their cells", flush=True)
    else:
        for experiment, command in commands:
            print(f"\n=== {experiment}: {' '.join(command[2:])}", flush=True)
            if subprocess.run(command, cwd=REPO_ROOT, env=env).returncode != 0:
                failed.append(experiment)
                print(f"!!! some jobs of {experiment} failed; the report marks their cells", flush=True)
    sweeps_done = time.time()
    print(f"\n=== report: {' '.join(report[2:])}", flush=True)
    report_rc = subprocess.run(report, cwd=REPO_ROOT, env=env).returncode
    print(
        f"\nvaenmf reproduce: finished in {time.time() - start:.0f} s (sweeps {sweeps_done - start:.0f} s, "
        f"{jobs} job(s) at a time; report {time.time() - sweeps_done:.0f} s); tables in {out}"
    )
    return 1 if failed or report_rc else 0


if __name__ == "__main__":
    raise SystemExit(main())
