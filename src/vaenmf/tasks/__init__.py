"""What one Hydra job does: a registry of tasks by name (``task=speech``, ``task=synergy``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def get_task(name: str) -> Callable[..., dict[str, Any]]:
    """The ``run(cfg, job)`` function of the task called ``name``."""
    from vaenmf.errors import ConfigError

    if name == "speech":
        from vaenmf.tasks.speech import run

        return run
    if name == "synergy":
        from vaenmf.tasks.synergy import run

        return run
    raise ConfigError(f"task must be one of ['speech', 'synergy'], got {name!r}")
