"""The Huang et al. DRNN as a LightningModule: masked speech/noise estimates, discriminative loss."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch

from vaenmf.models.drnn import DRNN, discriminative_loss

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class DRNNSystem(pl.LightningModule):
    """Trains :class:`~vaenmf.models.drnn.DRNN` on (noisy, speech, noise) magnitude sequences.

    The loss is :func:`~vaenmf.models.drnn.discriminative_loss` with ``reduction="mean"`` (per element), so
    that its value and the learning rate do not depend on batch size or sequence length.

    Args:
        n_features: Bins ``F`` of one frame.
        gamma: Weight of the discriminative term.
        optimizer: Partial optimiser (default Adam, lr 1e-3).
        scheduler: Partial learning-rate scheduler taking the optimiser, stepped once per epoch (``None``: a
            constant rate).
        log_prefix: Prefix of the logged metrics (the task's stage name).
        **model_kwargs: ``hidden``, ``n_layers``, ``recurrent_layer``, ``context``, ``input_transform``, ``eps``.

    Shape:
        Batches: ``(mixture, speech, noise)`` magnitudes, each ``(B, T, F)``.

    References:
        Huang, Kim, Hasegawa-Johnson, Smaragdis, ICASSP 2014; DESIGN.md section 5.
    """

    def __init__(
        self,
        n_features: int,
        gamma: float = 0.05,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        log_prefix: str = "drnn/",
        **model_kwargs: Any,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.gamma = float(gamma)
        self.model = DRNN(n_features, **model_kwargs)

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)
        else:
            optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"},
        }

    def forward(self, mixture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(mixture)

    def _loss(self, batch: Batch) -> torch.Tensor:
        mixture, speech, noise = batch
        y1, y2 = self.model(mixture)
        return discriminative_loss(y1, y2, speech, noise, gamma=self.gamma, reduction="mean")

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log(
            f"{self.hparams.log_prefix}loss",
            loss.detach(),
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch[0].shape[0],
        )
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        # sync_dist: under DDP each rank sees a shard of the validation set; log the mean over all of them.
        self.log(
            f"{self.hparams.log_prefix}val_loss",
            loss,
            on_epoch=True,
            prog_bar=True,
            sync_dist=True,
            batch_size=batch[0].shape[0],
        )
        return loss
