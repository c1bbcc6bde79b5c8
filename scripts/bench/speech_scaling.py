"""How one speech job's cost grows with its test set: ``data.n_test_utterances`` (16, 192) against wall time.

Runs ``vaenmf-train`` itself (``--method``, default ``nmf``: the column whose test-time work is the largest
share) once per test-set size, each in a fresh job folder with its own dictionary cache, and reads the job's
``metrics.json``: wall time, the per-stage wall and CPU seconds (``timings_s``, ``cpu_timings_s``), the scoring
split (``scoring``). 192 is TIMIT's core test set; the embedded demo is generated with
``--utterances-per-speaker`` (default 96) utterances per synthetic speaker so that its two test speakers have
192 (the dictionaries still get the configured 10000 / 9000 frames; the encoder-training speakers get more
utterances, which only methods with trained activations or networks use). Each size runs with the scoring pool
at its default and, with ``--workers``, at other sizes too.

Writes ``outputs/bench/speech_scaling.json``::

    python scripts/bench/speech_scaling.py --shared
    python scripts/bench/speech_scaling.py --sizes 16,192 --workers 0,1 --out outputs/bench/speech_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import environment, finish_environment, write_report  # noqa: E402


def run_job(args: argparse.Namespace, n_test: int, workers: str | None, folder: Path) -> dict[str, Any]:
    """One job; returns its timings from metrics.json and the wall time of the whole process."""
    overrides = [
        f"method={args.method}",
        f"noise={args.noise}",
        f"data.n_test_utterances={n_test}",
        f"data.demo_utts_per_speaker={args.utterances_per_speaker}",
        "logger=none",
        f"hydra.run.dir={folder / 'job'}",
        f"paths.output_root={folder}",
        *([f"scoring_workers={workers}"] if workers is not None else []),
        *args.overrides,
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "VAENMF_PROGRESS": "0"}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "vaenmf.train", *overrides],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    process_wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"job failed ({' '.join(overrides)}):\n{result.stderr[-3000:]}")
    metrics = json.loads((folder / "job" / "metrics.json").read_text())
    mixtures = len(metrics["rows"])
    return {
        "n_test_utterances": n_test,
        "mixtures": mixtures,
        "scoring_workers": metrics["scoring"]["workers"],
        "process_wall_s": process_wall,
        "job_wall_s": metrics["wall_time_s"],
        "timings_s": metrics["timings_s"],
        "cpu_timings_s": metrics["cpu_timings_s"],
        "scoring": metrics["scoring"],
        "enhance_and_score_s_per_mixture": metrics["timings_s"]["enhance_and_score"] / mixtures,
        "overrides": overrides,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "bench" / "speech_scaling.json")
    parser.add_argument("--sizes", default="16,192", help="test utterances per SNR, comma-separated")
    parser.add_argument("--workers", default="", help="scoring_workers values besides the default, e.g. 0,1")
    parser.add_argument("--method", default="nmf")
    parser.add_argument("--noise", default="factory")
    parser.add_argument("--utterances-per-speaker", type=int, default=96)
    parser.add_argument("--shared", action="store_true", help="record that other jobs shared the machine")
    parser.add_argument("--note", default=None)
    parser.add_argument("overrides", nargs="*", help="further Hydra overrides for every job")
    args = parser.parse_args(argv)
    env = environment(None, shared=args.shared, note=args.note)
    rows = []
    worker_settings: list[str | None] = [None, *(w for w in args.workers.split(",") if w.strip())]
    with tempfile.TemporaryDirectory(prefix="vaenmf-speech-scaling-") as tmp:
        for size in (int(s) for s in args.sizes.split(",") if s.strip()):
            for workers in worker_settings:
                folder = Path(tmp) / f"n{size}_w{workers}"
                row = run_job(args, size, workers, folder)
                rows.append(row)
                print(
                    f"n_test_utterances={size:4d} ({row['mixtures']} mixtures), scoring_workers="
                    f"{row['scoring_workers']}: job {row['job_wall_s']:.1f} s, enhance+score "
                    f"{row['timings_s']['enhance_and_score']:.1f} s "
                    f"({row['enhance_and_score_s_per_mixture']:.3f} s per mixture)",
                    flush=True,
                )
    report = {
        "what": "one speech job (vaenmf-train) per test-set size on the CPU; wall and CPU seconds per stage",
        "method": args.method,
        "noise": args.noise,
        "rows": rows,
        "environment": finish_environment(env),
    }
    write_report(args.out, report)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
