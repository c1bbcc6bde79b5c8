"""Lightning callbacks of the package, and its progress bars.

:func:`progress_bar`: the one kind of bar every long loop shows (movements, utterances, epochs).
:class:`EpochProgressBar`: one bar per training stage, advanced once per epoch (every Trainer of the package uses
it in place of Lightning's bar, which opens a new bar each epoch). :class:`StageState`: a stage's fingerprint and
random states in its checkpoints, for exact resumption. :class:`FiniteLossGuard`: one clear message at the first
non-finite training loss. :class:`EpochTimer`: the wall seconds of each epoch a fit ran.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar
from tqdm.auto import tqdm

__all__ = [
    "EpochProgressBar",
    "EpochTimer",
    "FiniteLossGuard",
    "StageState",
    "progress_bar",
    "progress_enabled",
]

#: Seconds between redraws when stderr is not a terminal (a log file): a few lines per minute, not one per step.
LOG_FILE_INTERVAL_S = 30.0
#: ``VAENMF_PROGRESS=0`` turns every bar of the package off (``launcher=parallel`` sets it in its workers).
PROGRESS_VARIABLE = "VAENMF_PROGRESS"


def progress_enabled() -> bool:
    """Whether bars are drawn: not when ``VAENMF_PROGRESS`` is ``0``/``false``/``no``/``off``."""
    return os.environ.get(PROGRESS_VARIABLE, "1").strip().lower() not in ("0", "false", "no", "off")


def progress_bar(total: int | None, desc: str, unit: str = "it", initial: int = 0, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr that disappears when done (``leave=False``); redrawn at most every
    :data:`LOG_FILE_INTERVAL_S` seconds when stderr is a file or a pipe, so a captured log stays readable; not
    drawn at all when ``VAENMF_PROGRESS=0`` (:func:`progress_enabled`).

    Args:
        total: Length of the loop.
        desc: What the loop is (``"enhance+score"``, a stage's name).
        unit: What one step is.
        initial: Steps already done (a resumed stage).
        **kwargs: Further ``tqdm`` arguments.
    """
    stream = sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        kwargs.setdefault("mininterval", LOG_FILE_INTERVAL_S)
    if not progress_enabled():
        kwargs["disable"] = True
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, file=stream, **kwargs)


class EpochProgressBar(ProgressBar):
    """One tqdm bar for the whole fit, advanced once per epoch, showing the latest logged metrics.

    Lightning's default bar opens a new bar every epoch (and redraws it every batch), which for 200 one-step
    epochs, or 60 epochs of 80 batches, floods the log. :meth:`JobContext.trainer
    <vaenmf.tasks.runtime.JobContext.trainer>` gives every stage this bar when ``trainer.enable_progress_bar``.

    Args:
        description: The stage's name, shown before the bar.
    """

    def __init__(self, description: str = "fit") -> None:
        super().__init__()
        self.description = description
        self._bar: tqdm | None = None
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._enabled and trainer.is_global_zero:
            self._bar = progress_bar(
                total=trainer.max_epochs, initial=trainer.current_epoch, desc=self.description, unit="epoch"
            )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._bar is not None:
            metrics: dict[str, Any] = {k: f"{float(v):.4g}" for k, v in trainer.progress_bar_metrics.items()}
            self._bar.set_postfix(metrics, refresh=False)
            self._bar.update(1)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _rng_states() -> dict[str, Any]:
    """The global random states (torch CPU and CUDA, numpy, Python) as plain types: a checkpoint that holds them
    still loads with ``torch.load(weights_only=True)``."""
    import random

    import numpy as np
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [str(kind), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class StageState(pl.Callback):
    """Makes a stage's checkpoints its own and its resumption exact.

    Every checkpoint gets a ``"vaenmf"`` entry with the stage's ``fingerprint`` (a hash of everything that
    determines the stage's result: its data, its settings, the seed, the code), so that a rerun under other
    inputs never resumes from it (:meth:`vaenmf.tasks.runtime.JobContext.fit_stage` checks it), and the global
    random states at the moment of saving, restored when the stage resumes. With the data modules' shuffling
    state (also checkpointed), a resumed stage draws the same batches and the same posterior samples as an
    uninterrupted one.

    Args:
        fingerprint: The stage's fingerprint.
    """

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        checkpoint["vaenmf"] = {"fingerprint": self.fingerprint, "rng": _rng_states()}

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        state = checkpoint.get("vaenmf") or {}
        if "rng" in state:
            _set_rng_states(state["rng"])


class EpochTimer(pl.Callback):
    """The wall seconds of each epoch this fit ran (training and validation; a resumed fit's earlier epochs are
    not counted), so that a stage's cost can be scaled to another number of epochs (a dry run's short fits).

    Attributes:
        seconds: One entry per epoch run, in order.
        batches: Training batches (optimiser steps) per epoch, as Lightning counts them (0 before an epoch ran).
    """

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.batches = 0
        self._start: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._start is not None:
            self.seconds.append(time.perf_counter() - self._start)
            self._start = None
            batches = trainer.num_training_batches
            self.batches = int(batches) if batches != float("inf") else 0


class FiniteLossGuard(pl.Callback):
    """Stops a trained stage at its first non-finite loss with one message that says what to change.

    Args:
        stage: The stage's name, for the message.
        data_note: What the data looked like (e.g. its range), for the message.
    """

    def __init__(self, stage: str, data_note: str = "") -> None:
        self.stage = stage
        self.data_note = data_note

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        import torch

        from vaenmf.errors import DataError

        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss).all()):
            raise DataError(
                f"stage {self.stage}: the training loss is not finite at epoch {trainer.current_epoch}, batch "
                f"{batch_idx}{'; ' + self.data_note if self.data_note else ''}. Rescale the data (e.g. divide it "
                "by its RMS) or lower the learning rate"
            )
