"""Running `vaenmf-train` as a user does, in a subprocess, for the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

TRAIN = [sys.executable, "-m", "vaenmf.train"]


def run_train(
    args: list[str], cwd: Path, env_extra: dict[str, str] | None = None, timeout: int = 240
) -> subprocess.CompletedProcess:
    """``vaenmf-train ARGS`` in ``cwd`` with W&B off (``env_extra`` may change that), on one torch thread
    (small networks: as fast, and robust on a busy machine) unless the arguments set ``torch_threads``."""
    env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_ERROR_REPORTING": "false", "HYDRA_FULL_ERROR": "0"}
    env.update(env_extra or {})
    if not any(a.startswith("torch_threads=") for a in args):
        args = [*args, "torch_threads=1"]
    return subprocess.run(TRAIN + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def train_cli() -> Callable[..., subprocess.CompletedProcess]:
    return run_train
