"""A dry run of the real study at full size: one job per method, each stage's time and peak memory, and the cost
of the whole study.

    python scripts/dry_run.py OUT [--data-root DIR] [--scale 1.0] [--epochs 2] [--only nmf,drnn,...]

Without ``--data-root`` it first writes a generated corpus of the real corpora's size and layout
(``scripts/make_fullsize_corpus.py --scale``) to ``OUT/corpus`` (kept and reused), and checks it with
``vaenmf-data check``. It then runs, one at a time and each on its own (no shared caches, so every stage is
measured cold), the jobs of the real study: every speech method of Table 1 on TIMIT + NOISEX-92 factory (test
split: the core test set, 192 utterances x 4 SNRs) and both Figure 2 methods on Ninapro DB1 (exercise 1, 27
subjects). The trained networks and the Figure 2 VAE-NMF stack run ``--epochs`` epochs (default 2) instead of
the protocol's; their stage is scaled to the protocol with the job's measured seconds per epoch
(``metrics.json`` ``training_epochs``); every other stage (the dictionary fits included) runs as in the study.
Memory does not grow with the epochs, so the peaks are the study's.

It writes ``OUT/dry_run.json`` (every job's stages: measured and at the protocol's epochs, peak memory, the
estimate) and ``OUT/dry_run.md`` (the tables of README "Full-size dry run"). A job already finished under the
same command is reused, so an interrupted dry run continues where it stopped.

The cost of the whole study (Tables 1 and 2 and Figure 2, one seed) is estimated from the per-method jobs:
Table 2's pooled condition and Table 1's babble cost what factory costs (same sizes: 9000 noise frames, one
mixture per training utterance, the same test mixtures); in a sweep the dictionary cache fits each dictionary
once (the speech dictionary once for all conditions, a noise dictionary once per condition and dictionary
learner) and the feature cache prepares a condition's training set once. On 2 CPU cores two jobs run at a time:
the estimate is the study's serial CPU seconds over 2. On one GPU the estimate is a model, not a measurement
(``GPU_STEP_S``), unless ``--device-measured`` numbers are given by a run on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SPEECH_METHODS = ("nmf", "vae_nmf", "dnmf", "drnn", "nmf_dnn", "vae_nmf_mu")
SYNERGY_METHODS = ("nmf", "vae_nmf")
#: The trained stages a dry run shortens, and the config key of their length (its protocol value is composed).
CAPPED_STAGES = {
    "encoder": "activations.epochs",
    "drnn": "network.epochs",
    "vae_nmf_stack": "dictionary.epochs",
}
#: Conditions of the study's speech jobs: Table 1's two noises and Table 2's pool.
CONDITIONS = ("factory", "babble", "pooled")
#: Per optimiser step on a GPU, for the model estimate: small networks (400-unit layers, batches of 128 frames;
#: the DRNN's 8 x 64 frames) are bound by the per-step overhead of PyTorch and Lightning (kernel launches, the
#: optimiser, the loop), not by arithmetic. An assumption (2-5 ms is typical), not a measurement.
GPU_STEP_S = (0.002, 0.005)
#: Processes that score test mixtures on a GPU node (its CPUs, for the estimate: the lent H200 node has 16).
GPU_NODE_SCORING_WORKERS = 15


@dataclass
class Job:
    """One dry-run job: a method of one task, and the overrides that shorten its trained stages."""

    name: str
    task: str
    method: str
    capped: dict[str, str] = field(default_factory=dict)  # stage -> config key


def plan_jobs(only: Sequence[str] | None = None) -> list[Job]:
    """The study's methods, one job each (``only``: job names such as ``speech_nmf``, ``synergy_vae_nmf``)."""
    jobs = []
    for method in SPEECH_METHODS:
        capped = {}
        if method == "drnn":
            capped["drnn"] = CAPPED_STAGES["drnn"]
        if method in ("vae_nmf", "nmf_dnn"):
            capped["encoder"] = CAPPED_STAGES["encoder"]
        jobs.append(Job(f"speech_{method}", "speech", method, capped))
    for method in SYNERGY_METHODS:
        capped = {"vae_nmf_stack": CAPPED_STAGES["vae_nmf_stack"]} if method == "vae_nmf" else {}
        jobs.append(Job(f"synergy_{method}", "synergy", method, capped))
    if only:
        unknown = sorted(set(only) - {j.name for j in jobs})
        if unknown:
            raise SystemExit(
                f"dry_run.py: unknown job(s) {unknown}; expected some of {[j.name for j in jobs]}"
            )
        jobs = [j for j in jobs if j.name in only]
    return jobs


def protocol_lengths(job: Job) -> dict[str, int]:
    """The protocol's length of each capped stage of ``job`` (the composed config's value, no override)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    data = "speech_timit" if job.task == "speech" else "ninapro_db1"
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"task={job.task}", f"method={job.method}", f"data={data}"])
    return {stage: int(OmegaConf.select(cfg, key)) for stage, key in job.capped.items()}


def job_command(job: Job, root: Path, out: Path, epochs: int, extra: Sequence[str] = ()) -> list[str]:
    """The ``vaenmf.train`` command of one job: real-corpus data config, no shared caches, shortened stages."""
    data = "speech_timit" if job.task == "speech" else "ninapro_db1"
    args = [
        f"task={job.task}",
        f"method={job.method}",
        f"data={data}",
        f"paths.data_root={root}",
        "seed=0",
        "logger=none",
        f"hydra.run.dir={out / 'jobs' / job.name}",
        f"paths.cache_dir={out / 'cache' / job.name}",
    ]
    if job.task == "speech":
        # Each job measured on its own: a sweep's caches would move stages from one job to another.
        args += [
            "noise=factory",
            "cache_dictionaries=false",
            "cache_features=false",
            "cache_input_scores=false",
        ]
    if job.task == "synergy":
        # One stack process, as in the study's sweep of one-CPU jobs (alone on the machine, `null` would start
        # one per CPU), so that the measured wall time is the one the study's estimate assumes.
        args.append("synergy.workers=1")
    args += [f"{key}={epochs}" for key in job.capped.values()]
    return [sys.executable, "-m", "vaenmf.train", *args, *task_overrides(extra, job.task)]


def task_overrides(overrides: Sequence[str], task: str) -> list[str]:
    """The overrides for a job of ``task``: unprefixed ones, and ``speech:``/``synergy:`` ones of that task."""
    kept = []
    for item in overrides:
        prefix, sep, rest = item.partition(":")
        if sep and prefix in ("speech", "synergy"):
            if prefix == task:
                kept.append(rest)
        else:
            kept.append(item)
    return kept


def run_job(job: Job, command: list[str], out: Path) -> dict[str, Any]:
    """Run one job (or reuse the result of the same command), returning its ``metrics.json`` and the process's
    wall time and peak memory (the job and its scoring workers: the largest of them)."""
    job_dir = out / "jobs" / job.name
    record = out / "jobs" / f"{job.name}.run.json"
    if record.is_file():
        previous = json.loads(record.read_text())
        if previous.get("command") == command[1:] and (job_dir / "metrics.json").is_file():
            print(f"[dry run] {job.name}: reusing the finished job in {job_dir}", flush=True)
            return previous
    job_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = out / "jobs" / f"{job.name}.log"
    env = {**os.environ, "WANDB_MODE": "disabled", "VAENMF_PROGRESS": "0", "PYTHONPATH": str(REPO / "src")}
    print(f"[dry run] {job.name}: {' '.join(command[3:])}", flush=True)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or not (job_dir / "metrics.json").is_file():
        tail = log_path.read_text().splitlines()[-15:]
        raise SystemExit(
            f"dry_run.py: job {job.name} failed (exit {code}); see {log_path}:\n" + "\n".join(tail)
        )
    metrics = json.loads((job_dir / "metrics.json").read_text())
    result = {
        "command": command[1:],
        "wall_s": wall,
        # ru_maxrss of a waited-for child: its peak, or its largest descendant's (KiB on Linux).
        "process_peak_rss_mb": usage.ru_maxrss / 1024.0,
        # The machine's 1-minute load average before and after the job (the timings are only as clean as it).
        "load_average": [load_before, os.getloadavg()[0]],
        "metrics": {k: metrics.get(k) for k in _KEPT},
        "counts": _counts(metrics),
    }
    record.write_text(json.dumps(result, indent=2))
    print(
        f"[dry run] {job.name}: done in {wall:.0f} s, peak {result['process_peak_rss_mb']:.0f} MiB",
        flush=True,
    )
    return result


_KEPT = (
    "status",
    "timings_s",
    "cpu_timings_s",
    "peak_rss_mb",
    "peak_rss_scope",
    "training_epochs",
    "scoring",
    "shortfalls",
    "wall_time_s",
    "git_commit",
)


def _counts(metrics: dict[str, Any]) -> dict[str, int]:
    rows = metrics.get("rows") or []
    if metrics.get("task") == "speech":
        return {"test_mixtures": len(rows)}
    return {"movements": len(rows)}


def at_protocol(job: Job, result: dict[str, Any], lengths: dict[str, int]) -> dict[str, Any]:
    """The job's stages at the protocol's epochs: each capped stage's measured seconds plus the missing epochs at
    the measured seconds per epoch (CPU seconds alike, with the stage's own CPU/wall ratio)."""
    metrics = result["metrics"]
    wall = dict(metrics["timings_s"])
    cpu = dict(metrics.get("cpu_timings_s") or wall)
    home = "separator" if job.task == "speech" else "synergies"
    scaled = {}
    for stage, protocol in lengths.items():
        entry = (metrics.get("training_epochs") or {}).get(stage)
        if not entry or not entry["epochs"]:
            raise SystemExit(f"dry_run.py: job {job.name} has no timed epochs of stage {stage!r}")
        per_epoch = entry["seconds"] / entry["epochs"]
        extra = (protocol - entry["epochs"]) * per_epoch
        ratio = cpu[home] / wall[home] if wall[home] > 0 else 1.0
        wall[home] += extra
        cpu[home] += extra * ratio
        scaled[stage] = {
            "epochs_run": entry["epochs"],
            "protocol_epochs": protocol,
            "seconds_per_epoch": per_epoch,
            "batches_per_epoch": entry.get("batches_per_epoch", 0),
        }
    scoring = metrics.get("scoring") or {}
    serial_cpu = sum(cpu.values()) + float(scoring.get("score_cpu_s", 0.0) if scoring.get("workers") else 0.0)
    return {"wall_s": wall, "cpu_s": cpu, "serial_cpu_s": serial_cpu, "scaled": scaled}


def _home(stage: str) -> str:
    """The job stage (``timings_s`` key) that contains a trained stage (``training_epochs`` key)."""
    if stage == "vae_nmf_stack":
        return "synergies"
    if stage == "speech_dict" or stage.startswith("noise_dict"):
        return "dictionaries"
    return "separator"


def _dictionary_parts(result: dict[str, Any]) -> tuple[float, float]:
    """The dictionaries stage's CPU seconds split into the speech and the noise fit (their timed epochs' shares;
    by their frames, 10000 : 9000, when the fits ran no timed epochs)."""
    epochs = result["metrics"].get("training_epochs") or {}
    total = result["protocol"]["cpu_s"].get("dictionaries", 0.0)
    speech = sum(e["seconds"] for k, e in epochs.items() if k == "speech_dict")
    noise = sum(e["seconds"] for k, e in epochs.items() if k.startswith("noise_dict"))
    if speech + noise <= 0:
        return total * 10 / 19, total * 9 / 19
    return total * speech / (speech + noise), total * noise / (speech + noise)


def cache_savings(speech: dict[str, dict[str, Any]]) -> float:
    """CPU seconds a sweep's caches save against the per-method jobs run on their own, over the study's speech
    conditions: each dictionary learner's dictionaries are fitted once per condition (the speech dictionary once
    for all three), and a condition's dictionary frames and training set are prepared once."""
    learner = {"nmf": "nmf", "dnmf": "nmf", "nmf_dnn": "nmf", "vae_nmf": "vae_nmf", "vae_nmf_mu": "vae_nmf"}
    saved = 0.0
    for condition in range(len(CONDITIONS)):
        fitted: set[str] = set()
        prepared: set[str] = set()
        for method in SPEECH_METHODS:
            r = speech[method]
            cpu = r["protocol"]["cpu_s"]
            if method in learner:
                speech_part, noise_part = _dictionary_parts(r)
                if learner[method] in fitted:
                    saved += speech_part + noise_part
                elif condition > 0:
                    saved += speech_part
                fitted.add(learner[method])
            for stage in ("dictionary_frames", "training_set"):
                if stage in cpu:
                    if stage in prepared:
                        saved += cpu[stage]
                    prepared.add(stage)
    return saved


def gpu_model_s(result: dict[str, Any], lengths: dict[str, int], step_s: float) -> float:
    """One job's wall seconds on a GPU node, modelled: every trained stage at ``step_s`` per optimiser step (its
    batches per epoch times the protocol's epochs), enhancement as measured, scoring spread over the node's CPUs,
    everything else (reading, features, the encoder's MU targets) at its measured wall time."""
    wall = dict(result["protocol"]["wall_s"])
    trained = 0.0
    for stage, entry in (result["metrics"].get("training_epochs") or {}).items():
        if not entry["epochs"]:
            continue
        epochs = lengths.get(stage, entry["epochs"])
        home = _home(stage)
        wall[home] = max(wall.get(home, 0.0) - entry["seconds"] / entry["epochs"] * epochs, 0.0)
        trained += entry["batches_per_epoch"] * epochs * step_s
    scoring = result["metrics"].get("scoring") or {}
    if "enhance_and_score" in wall:
        enhance, score = float(scoring.get("enhance_cpu_s", 0.0)), float(scoring.get("score_cpu_s", 0.0))
        wall["enhance_and_score"] = max(enhance, score / GPU_NODE_SCORING_WORKERS)
    return sum(wall.values()) + trained


def study_estimate(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The whole study's cost from the per-method jobs (see the module docstring for what is assumed)."""
    speech = {j.removeprefix("speech_"): r for j, r in results.items() if j.startswith("speech_")}
    synergy = {j.removeprefix("synergy_"): r for j, r in results.items() if j.startswith("synergy_")}
    missing = sorted(set(SPEECH_METHODS) - set(speech)) + sorted(set(SYNERGY_METHODS) - set(synergy))
    if missing:
        return {"complete": False, "missing_methods": missing}
    serial = len(CONDITIONS) * sum(r["protocol"]["serial_cpu_s"] for r in speech.values())
    serial += sum(r["protocol"]["serial_cpu_s"] for r in synergy.values())
    saved = cache_savings(speech)
    gpu = []  # one job at a time; the caches' savings left out (an upper bound)
    for step_s in GPU_STEP_S:
        total = len(CONDITIONS) * sum(gpu_model_s(r, r["lengths"], step_s) for r in speech.values())
        gpu.append(total + sum(gpu_model_s(r, r["lengths"], step_s) for r in synergy.values()))
    return {
        "complete": True,
        "jobs": {"table1": 2 * len(SPEECH_METHODS), "table2": len(SPEECH_METHODS), "fig2_vaf": 2},
        "serial_cpu_s_without_caches": serial,
        "cache_savings_cpu_s": saved,
        "serial_cpu_s": serial - saved,
        "two_cpu_cores_s": (serial - saved) / 2.0,
        "one_gpu_node_s_model": gpu,
        "gpu_step_s_assumed": list(GPU_STEP_S),
        "gpu_node_scoring_workers_assumed": GPU_NODE_SCORING_WORKERS,
    }


def _fmt_s(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def report_markdown(summary: dict[str, Any]) -> str:
    """The dry run's tables: per job and stage, wall seconds (at the protocol's epochs) and peak memory."""
    stages = ("data", "dictionary_frames", "dictionaries", "training_set", "separator", "enhance_and_score")
    lines = [
        f"Dry run of {summary['corpus']} (scale {summary['scale']}), commit {summary['git_commit']}, "
        f"{summary['machine']}; trained stages run {summary['epochs']} epochs and are scaled to the protocol's.",
        "",
        "| job | " + " | ".join(stages) + " | job (protocol) | job peak | scoring worker peak |",
        "|---|" + "---|" * (len(stages) + 3),
    ]
    for name, r in summary["jobs"].items():
        if not name.startswith("speech_"):
            continue
        wall, peak = r["protocol"]["wall_s"], r["metrics"]["peak_rss_mb"]
        cells = [f"{_fmt_s(wall[s])} / {peak[s] / 1024:.1f} GiB" if s in wall else "-" for s in stages]
        workers = (r["metrics"].get("scoring") or {}).get("workers_peak_rss_mb")
        worker = f"{workers / 1024:.1f} GiB" if workers else "-"
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {_fmt_s(sum(wall.values()))} | {max(peak.values()) / 1024:.1f} GiB | {worker} |"
        )
    lines += ["", "| job | data | synergies | job (protocol) | peak memory |", "|---|---|---|---|---|"]
    for name, r in summary["jobs"].items():
        if not name.startswith("synergy_"):
            continue
        wall, peak = r["protocol"]["wall_s"], r["metrics"]["peak_rss_mb"]
        cells = [f"{_fmt_s(wall[s])} / {peak[s] / 1024:.1f} GiB" for s in ("data", "synergies")]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {_fmt_s(sum(wall.values()))} | {max(peak.values()) / 1024:.1f} GiB |"
        )
    est = summary["estimate"]
    if est.get("complete"):
        lo, hi = est["one_gpu_node_s_model"]
        lines += [
            "",
            f"Whole study (Tables 1-2, Figure 2; one seed): {_fmt_s(est['serial_cpu_s'])} of CPU with the sweep's "
            f"caches ({_fmt_s(est['serial_cpu_s_without_caches'])} without); on 2 CPU cores about "
            f"{_fmt_s(est['two_cpu_cores_s'])}; on one GPU node, one job at a time (a model, not a measurement: "
            f"{GPU_STEP_S[0] * 1e3:.0f}-{GPU_STEP_S[1] * 1e3:.0f} ms per training step, scoring on "
            f"{GPU_NODE_SCORING_WORKERS} CPUs) {_fmt_s(lo)} - {_fmt_s(hi)}.",
        ]
    return "\n".join(lines) + "\n"


def prepare_corpus(out: Path, scale: float) -> Path:
    """``OUT/corpus``, written by ``scripts/make_fullsize_corpus.py`` unless a complete one of this scale is there
    (a partial one this script left, after a kill, is written again; any other folder there is refused)."""
    root = out / "corpus"
    stamp, partial = out / "corpus.complete.json", out / "corpus.partial"
    wanted = {"scale": scale, "seed": 0}
    if stamp.is_file() and root.is_dir() and json.loads(stamp.read_text()) == wanted:
        return root
    if root.exists():
        if not (partial.is_file() or stamp.is_file()):
            raise SystemExit(
                f"dry_run.py: {root} exists and was not written by this script; move it or pick another OUT"
            )
        shutil.rmtree(root)
    stamp.unlink(missing_ok=True)
    partial.write_text(json.dumps(wanted))
    print(f"[dry run] writing the generated corpus (scale {scale}) to {root}", flush=True)
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_fullsize_corpus.py"), str(root), "--scale", str(scale)],
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    stamp.write_text(json.dumps(wanted))
    partial.unlink()
    return root


def check_corpus(root: Path) -> None:
    """``vaenmf-data check``: the dry run only makes sense on a corpus that every experiment can run on."""
    proc = subprocess.run(
        [sys.executable, "-m", "vaenmf.data.cli", "check", str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"dry_run.py: `vaenmf-data check {root}` exited {proc.returncode}:\n{proc.stdout[-3000:]}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    from vaenmf.tasks.runtime import git_commit  # the one the jobs record (with -dirty)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the corpus, the jobs and dry_run.{json,md}")
    parser.add_argument("--data-root", type=Path, help="run on these corpora instead of a generated one")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="generated corpus size (make_fullsize_corpus.py)"
    )
    parser.add_argument(
        "--epochs", type=int, default=2, help="epochs of the trained stages (scaled to the protocol)"
    )
    parser.add_argument(
        "--only", type=lambda s: [x for x in s.split(",") if x], help="job names, comma-separated"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="extra Hydra overrides for every job; a speech: or synergy: prefix sends one to those jobs only "
        "(speech:data.n_test_utterances=8 synergy:data.subjects=[1,2])",
    )
    args = parser.parse_intermixed_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    root = args.data_root.resolve() if args.data_root else prepare_corpus(out, args.scale)
    check_corpus(root)
    jobs = plan_jobs(args.only)
    results: dict[str, dict[str, Any]] = {}
    for job in jobs:
        result = run_job(job, job_command(job, root, out, args.epochs, args.overrides), out)
        result["lengths"] = protocol_lengths(job)
        result["protocol"] = at_protocol(job, result, result["lengths"])
        result["job"] = asdict(job)
        results[job.name] = result
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = {
        "corpus": str(root) if args.data_root else "the generated full-size corpus",
        "scale": 1.0 if args.data_root else args.scale,
        "epochs": args.epochs,
        "overrides": list(args.overrides),
        "git_commit": git_commit(REPO),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}",
        "jobs": results,
        "estimate": study_estimate(results),
        "children_cpu_s": usage.ru_utime + usage.ru_stime,
    }
    (out / "dry_run.json").write_text(json.dumps(summary, indent=2))
    (out / "dry_run.md").write_text(report_markdown(summary))
    print((out / "dry_run.md").read_text(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
