"""The Kang et al. encoding DNN as a LightningModule: regress NMF activations from noisy frames (MSE)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from vaenmf.models.encoding_dnn import EncodingDNN

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]


class EncodingDNNSystem(pl.LightningModule):
    """Trains :class:`~vaenmf.models.encoding_dnn.EncodingDNN` on (stacked noisy frame, ``[h^s; h^n]``) pairs.

    Args:
        n_features: Bins ``m`` of one frame.
        rank: Atoms per dictionary ``r`` (output ``2 r``).
        optimizer: Partial optimiser (default Adam, lr 1e-3).
        **model_kwargs: ``context``, ``hidden``, ``n_layers``, ``input_transform``, ``output_activation``.

    Shape:
        Batches: ``(inputs (batch, m (2c + 1)), targets (batch, 2 r))``.

    References:
        Kang et al., IEEE SPL 22(2), 2014; DESIGN.md section 5.
    """

    def __init__(
        self,
        n_features: int,
        rank: int,
        optimizer: OptimizerFactory | None = None,
        log_prefix: str = "encoder/",
        **model_kwargs: Any,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer"])
        self.optimizer_factory = optimizer
        self.model = EncodingDNN(n_features, rank, **model_kwargs)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_factory is None:
            return torch.optim.Adam(self.parameters(), lr=1e-3)
        return self.optimizer_factory(self.parameters())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        loss = F.mse_loss(self.model(inputs), targets)
        self.log(
            f"{self.hparams.log_prefix}mse",
            loss.detach(),
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            sync_dist=True,  # under DDP: the epoch mean over every rank's batches (a no-op on one process)
            batch_size=inputs.shape[0],
        )
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        loss = F.mse_loss(self.model(inputs), targets)
        self.log(
            f"{self.hparams.log_prefix}val_mse",
            loss,
            on_epoch=True,
            prog_bar=True,
            sync_dist=True,
            batch_size=inputs.shape[0],
        )
        return loss
