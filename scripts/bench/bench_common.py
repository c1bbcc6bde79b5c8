"""What every benchmark of ``scripts/bench/`` shares: timing, thread settings, the environment record, the JSON.

Timing rules (one place, so every benchmark follows them):

* one warm-up call first (imports, allocator, thread pools, MKL's kernel selection), then the best of
  ``repeats`` timed calls: on a shared machine the minimum is the least disturbed measurement;
* wall time (``perf_counter``) and process CPU time (``process_time``) both: with one thread the CPU time is
  the steadier measure when other processes compete for the cores (it does not count time spent descheduled),
  with several threads it also counts threads spinning at barriers;
* peers are timed round robin inside the same run (:func:`interleaved_best`), so a slow spell hits all of them,
  and reports give ratios measured in one run (absolute times drift with the machine's load);
* GPU work is synchronised before a clock is read (``device="cuda"``).

Every report records the threads used (torch's and the BLAS pools'), the CPU, the library versions, the load
average before and after, and whether the machine was shared (``--shared``), and is written atomically by
:func:`write_report`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "IdleGate",
    "Timing",
    "add_common_arguments",
    "best_time",
    "cpu_idle_fraction",
    "cuda_unavailable_report",
    "environment",
    "finish_environment",
    "interleaved_best",
    "synchronizer",
    "thread_limits",
    "write_report",
]


class Timing(dict):
    """``{"seconds": best wall, "cpu_seconds": best process CPU, "repeats": n}`` (a dict, so it is JSON)."""

    @property
    def seconds(self) -> float:
        return float(self["seconds"])

    @property
    def cpu_seconds(self) -> float:
        return float(self["cpu_seconds"])


def synchronizer(device: str | torch.device | None) -> Callable[[], None]:
    """A function that waits for the device's queued work (a no-op on the CPU)."""
    if device is not None and torch.device(device).type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def cpu_idle_fraction(interval: float = 0.25) -> float | None:
    """Fraction of all CPUs' time spent idle over ``interval`` seconds (Linux ``/proc/stat``; else None)."""

    def snapshot() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    try:
        idle0, total0 = snapshot()
        time.sleep(interval)
        idle1, total1 = snapshot()
    except (OSError, ValueError, IndexError):
        return None
    return (idle1 - idle0) / max(1, total1 - total0)


class IdleGate:
    """Before each timed call, wait up to ``max_wait`` seconds for the machine to be mostly idle.

    On a shared machine other processes make the timings noisy; waiting for a quiet moment (idle fraction
    above ``threshold``) before each repeat makes the best-of-repeats time more reproducible. Counts how many
    timed calls started quiet and how many gave up waiting.
    """

    def __init__(self, max_wait: float = 0.0, threshold: float = 0.8):
        self.max_wait, self.threshold = float(max_wait), float(threshold)
        self.quiet_starts = self.busy_starts = 0

    def __call__(self) -> None:
        if self.max_wait <= 0:
            return
        deadline = time.perf_counter() + self.max_wait
        while True:
            idle = cpu_idle_fraction()
            if idle is None or idle >= self.threshold:
                self.quiet_starts += 1
                return
            if time.perf_counter() >= deadline:
                self.busy_starts += 1
                return

    def summary(self) -> dict:
        return {
            "max_wait_s": self.max_wait,
            "idle_threshold": self.threshold,
            "timed_calls_started_quiet": self.quiet_starts,
            "timed_calls_started_busy": self.busy_starts,
        }


def _timed(fn: Callable[[], Any], sync: Callable[[], None]) -> tuple[float, float, Any]:
    sync()
    c0, t0 = time.process_time(), time.perf_counter()
    result = fn()
    sync()
    return time.perf_counter() - t0, time.process_time() - c0, result


def best_time(
    fn: Callable[[], Any],
    repeats: int,
    warmup: Callable[[], Any] | None = None,
    before: Callable[[], None] | None = None,
    device: str | torch.device | None = None,
) -> tuple[Timing, Any]:
    """Best wall and best CPU time of ``repeats`` calls of ``fn`` after one warm-up call, and the last result.

    Args:
        fn: What to time.
        repeats: Timed calls (at least one).
        warmup: The warm-up call (default ``fn`` itself; pass a cheaper one for long runs, or ``False``-like
            ``lambda: None`` to skip).
        before: Runs before every timed call, outside the timing (e.g. an :class:`IdleGate`).
        device: Synchronise this device around every timed call.
    """
    sync = synchronizer(device)
    (warmup or fn)()
    sync()
    best, best_cpu, result = float("inf"), float("inf"), None
    n = max(1, int(repeats))
    for _ in range(n):
        if before is not None:
            before()
        wall, cpu, result = _timed(fn, sync)
        best, best_cpu = min(best, wall), min(best_cpu, cpu)
    return Timing(seconds=best, cpu_seconds=best_cpu, repeats=n), result


def interleaved_best(
    fns: dict[str, Callable[[], Any]],
    repeats: int,
    warmups: dict[str, Callable[[], Any]] | None = None,
    before: Callable[[], None] | None = None,
    device: str | torch.device | None = None,
) -> dict[str, tuple[Timing, Any]]:
    """:func:`best_time` for several implementations, their repeats interleaved round robin.

    Returns ``{name: (timing, last result)}``.
    """
    sync = synchronizer(device)
    for name, fn in fns.items():
        ((warmups or {}).get(name) or fn)()
    sync()
    best: dict[str, list[Any]] = {name: [float("inf"), float("inf"), None] for name in fns}
    n = max(1, int(repeats))
    for _ in range(n):
        for name, fn in fns.items():
            if before is not None:
                before()
            wall, cpu, result = _timed(fn, sync)
            row = best[name]
            row[0], row[1], row[2] = min(row[0], wall), min(row[1], cpu), result
    return {name: (Timing(seconds=w, cpu_seconds=c, repeats=n), r) for name, (w, c, r) in best.items()}


@contextlib.contextmanager
def thread_limits(threads: int | None) -> Iterator[None]:
    """Run the body with ``threads`` torch intra-op threads and BLAS threads (None: leave both as they are).

    Restores torch's setting afterwards. Load every library whose BLAS pool should be limited before entering:
    ``threadpoolctl`` reaches only libraries already loaded.
    """
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(int(threads))
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(
    threads: int | None,
    shared: bool = False,
    note: str | None = None,
    device: str | torch.device | None = None,
    libraries: Sequence[str] = (),
) -> dict[str, Any]:
    """What the timings depend on: machine, libraries, threads, load, and whether the machine was shared."""
    import numpy as np
    from threadpoolctl import threadpool_info

    pools = [
        {k: info.get(k) for k in ("user_api", "internal_api", "num_threads", "version", "filepath")}
        for info in threadpool_info()
    ]
    versions = {}
    for name in libraries:
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "unknown")
        except ImportError:
            versions[name] = None
    env: dict[str, Any] = {
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        **versions,
        "torch_num_threads": torch.get_num_threads(),
        "threads_requested": threads,
        "threadpoolctl": pools,
        "env": {
            k: os.environ.get(k)
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE")
        },
        "machine_shared": bool(shared),
        "note": note,
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "cpu_idle_fraction_start": cpu_idle_fraction(),
    }
    if device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def finish_environment(env: dict[str, Any]) -> dict[str, Any]:
    """Add the load at the end of the run to an :func:`environment` record."""
    env["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    env["cpu_idle_fraction_end"] = cpu_idle_fraction()
    return env


def add_common_arguments(parser: Any, default_out: str) -> None:
    """The options every benchmark takes: ``--out``, ``--repeats``, ``--threads``, ``--device``, ``--shared``,
    ``--note``, ``--wait-idle``, ``--quiet``."""
    parser.add_argument("--out", type=Path, default=Path(default_out))
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (best is kept)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch and BLAS threads for this run (default: leave the libraries' own setting)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (a missing GPU is skipped cleanly)")
    parser.add_argument(
        "--shared", action="store_true", help="record that other jobs were using the machine during the run"
    )
    parser.add_argument("--note", default=None, help="free text stored with the environment record")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        help="before each timed call wait up to this many seconds for the CPUs to be >= 80%% idle (default 0)",
    )
    parser.add_argument("--quiet", action="store_true")


def cuda_unavailable_report(device: str) -> dict[str, Any] | None:
    """The report of a run asked for a missing GPU (None when the device is usable)."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        return {"device": str(device), "skipped": True, "reason": "no CUDA device is available"}
    return None


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON, atomically (a reader never sees a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, path)
