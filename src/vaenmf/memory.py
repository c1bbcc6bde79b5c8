"""A process's resident memory: its peak, resettable per stage on Linux, and its children's.

Plain functions of the standard library, used by the job's stage clock (:mod:`vaenmf.tasks.stages`) and by
worker processes that report their own peak (:mod:`vaenmf.models.vae_nmf_stack`).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

__all__ = ["children_peak_rss_mb", "peak_rss_mb", "reset_peak_rss"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _maxrss_mb(who: int) -> float:
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    value = float(resource.getrusage(who).ru_maxrss)
    return value / (1024.0 * 1024.0) if sys.platform == "darwin" else value / 1024.0


def peak_rss_mb() -> float:
    """The process's peak resident memory in MiB since the last :func:`reset_peak_rss` (or since it started)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0  # "VmHWM:   806472 kB"
    except OSError:
        pass
    return _maxrss_mb(resource.RUSAGE_SELF)


def reset_peak_rss() -> bool:
    """Reset the process's peak resident memory to its current resident memory; False where it cannot be."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def children_peak_rss_mb() -> float:
    """The largest peak resident memory (MiB) of the process's finished (waited-for) child processes."""
    return _maxrss_mb(resource.RUSAGE_CHILDREN)
