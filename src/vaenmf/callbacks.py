"""Lightning callbacks of the package.

:class:`EpochProgressBar`: a progress bar over epochs, for full-batch systems whose epochs are a single step
(NMF, DNMF).
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar
from tqdm.auto import tqdm

__all__ = ["EpochProgressBar"]


class EpochProgressBar(ProgressBar):
    """One tqdm bar for the whole fit, advanced once per epoch, showing the latest logged metrics.

    Lightning's default bar opens a new bar every epoch, which for 200 one-step epochs floods the log.
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
            self._bar = tqdm(
                total=trainer.max_epochs,
                initial=trainer.current_epoch,
                desc=self.description,
                unit="it",
                leave=False,
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
