"""What each stage of a job costs: wall seconds, CPU seconds and peak resident memory.

A job's ``metrics.json`` carries, per stage (``data``, ``dictionary_frames``, ``dictionaries``, ``training_set``,
``separator``, ``enhance_and_score`` for speech; ``data``, ``synergies`` for synergies):

- ``timings_s``: wall seconds;
- ``cpu_timings_s``: CPU seconds of the job's process (all its threads), plus what a stage reports of its worker
  processes (:meth:`StageClock.add_cpu`: the VAE-NMF stacks'; the scoring pool's CPU is in ``scoring``);
- ``peak_rss_mb``: the most resident memory the job's process held during the stage, in MiB.

The peak is per stage on Linux, where writing ``5`` to ``/proc/self/clear_refs`` resets the process's
high-water mark (``VmHWM`` in ``/proc/self/status``) at the start of each stage. Elsewhere only the lifetime
peak (``ru_maxrss``) is readable, so each stage's value is the peak so far; ``peak_rss_scope`` says which
(``"stage"`` or ``"cumulative"``). Worker processes (the scoring pool) are measured apart:
:func:`children_peak_rss_mb`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from vaenmf.memory import children_peak_rss_mb, peak_rss_mb, reset_peak_rss

__all__ = ["StageClock", "children_peak_rss_mb", "peak_rss_mb", "reset_peak_rss"]


class StageClock:
    """Times the stages of a job and records each one's peak memory.

    Example:
        >>> clock = StageClock()
        >>> with clock.stage("data"):
        ...     pass
        >>> sorted(clock.wall)
        ['data']

    A stage entered twice accumulates its times and keeps the larger peak.
    """

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float] = {}
        self.scope = "stage"

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Measure the ``with`` block as stage ``name`` (also when it raises)."""
        if not reset_peak_rss():
            self.scope = "cumulative"
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - start
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu_start
            self.peak_rss_mb[name] = round(max(self.peak_rss_mb.get(name, 0.0), peak_rss_mb()), 1)

    def add_cpu(self, name: str, seconds: float) -> None:
        """Count CPU seconds that stage ``name`` spent in other processes (a stack's worker processes), which
        the job's own ``process_time`` does not see."""
        self.cpu[name] = self.cpu.get(name, 0.0) + float(seconds)

    def metrics(self) -> dict[str, object]:
        """The ``metrics.json`` entries: ``timings_s``, ``cpu_timings_s``, ``peak_rss_mb``, ``peak_rss_scope``."""
        return {
            "timings_s": dict(self.wall),
            "cpu_timings_s": dict(self.cpu),
            "peak_rss_mb": dict(self.peak_rss_mb),
            "peak_rss_scope": self.scope,
        }
