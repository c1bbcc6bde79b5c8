"""A bare CPU Trainer for the system tests (no logger, checkpoints, progress bar or summary unless asked)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import pytorch_lightning as pl


def quiet_trainer(max_epochs: int, **kwargs) -> pl.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return pl.Trainer(max_epochs=max_epochs, **{**defaults, **kwargs})


@pytest.fixture
def make_trainer() -> Callable[..., pl.Trainer]:
    return quiet_trainer
