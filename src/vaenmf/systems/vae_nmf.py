"""VAE-NMF as a LightningModule: the loss of eq. 4 minimised with Adam over mini-batches of frames."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch

from vaenmf.models.vae_nmf import VAENMF
from vaenmf.nmf.fit import normalize_dictionary

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]


class VAENMFSystem(pl.LightningModule):
    """Trains :class:`~vaenmf.models.vae_nmf.VAENMF` and hands on its dictionary ``max(W, 0)``.

    Logs, per step and per epoch: ``loss`` (eq. 4), ``recon`` (-E_q log p(x|z), one sample), ``kl``,
    ``penalty`` (eq. 5), ``elbo`` (per frame), and ``neg_fraction`` / ``neg_mass`` of the decoder weights
    that :meth:`dictionary` clips to zero.

    Args:
        n_features: ``m``.
        rank: ``r``.
        optimizer: A partial optimiser, called with the parameters (Hydra ``_partial_: true``); default the
            paper's Adam(lr 1e-3, weight decay 5e-4).
        n_frames: Unused (all systems take it; the data module decides the batches).
        normalize: Column norm of the dictionary handed on (``"l2"``, ``"l1"`` or ``"none"``).
        init_from_data: Rescale the initial ``W`` to the first batch (``VAENMF.reset_dictionary``).
        seed: Seed of the posterior samples' generator.
        log_prefix: Prefix of the logged metric names.
        **model_kwargs: Everything else goes to :class:`~vaenmf.models.vae_nmf.VAENMF` (likelihood, sampler,
            hidden, prior_shape, penalty_weight, ...).

    Shape:
        Batches: ``(batch, m)`` frames.

    References:
        Xie et al., sec. 2.2 and 3 (Adam, lr 1e-3, weight decay 5e-4, batch 128).
    """

    def __init__(
        self,
        n_features: int,
        rank: int = 40,
        optimizer: OptimizerFactory | None = None,
        n_frames: int | None = None,
        normalize: str = "l2",
        init_from_data: bool = True,
        seed: int = 0,
        log_prefix: str = "",
        **model_kwargs: Any,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer"])
        self.optimizer_factory = optimizer
        if "hidden" in model_kwargs:
            model_kwargs["hidden"] = tuple(int(h) for h in model_kwargs["hidden"])
        self.model = VAENMF(n_features, rank, **model_kwargs)
        self.register_buffer("initialised", torch.tensor(not init_from_data))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_factory is None:
            return torch.optim.Adam(self.parameters(), lr=1e-3, weight_decay=5e-4)
        return self.optimizer_factory(self.parameters())

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        if not bool(self.initialised):
            generator = torch.Generator(device=batch.device).manual_seed(self.hparams.seed)
            self.model.reset_dictionary(batch, generator=generator)
            self.initialised.fill_(True)
        out = self.model(batch)
        fraction, mass = self.model.negative_weight_stats()
        prefix = self.hparams.log_prefix
        metrics = {
            "loss": out["loss"],
            "recon": out["recon"],
            "kl": out["kl"],
            "penalty": out["penalty"],
            "neg_fraction": fraction,
            "neg_mass": mass,
        }
        self.log_dict(
            {f"{prefix}{k}": v.detach() for k, v in metrics.items()},
            on_step=True,
            on_epoch=True,
            batch_size=batch.shape[0],
        )
        # The ELBO also goes to the progress bar (logged once: Lightning adds the _step/_epoch suffixes).
        self.log(
            f"{prefix}elbo",
            out["elbo"].detach(),
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch.shape[0],
        )
        return out["loss"]

    @torch.no_grad()
    def dictionary(self) -> torch.Tensor:
        """``max(W, 0)``, columns normalised, on the CPU.

        Shape:
            ``(m, r)``.
        """
        W = self.model.dictionary().detach()
        if self.hparams.normalize != "none":
            W, _ = normalize_dictionary(W, norm=self.hparams.normalize)
        return W.cpu()
