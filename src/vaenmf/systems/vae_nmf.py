"""VAE-NMF as a LightningModule: the loss of eq. 4 minimised with Adam over mini-batches of frames."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch

from vaenmf.models.vae_nmf import VAENMF
from vaenmf.nmf.fit import normalize_dictionary

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]


#: Metrics logged once per epoch as frame-weighted means over the epoch's batches, in the order they are summed.
EPOCH_METRICS = ("loss", "recon", "kl", "penalty", "elbo")
#: Metrics of the decoder weight logged once per epoch at the epoch's end (the ``W`` the epoch leaves).
WEIGHT_METRICS = ("neg_fraction", "neg_mass")


class VAENMFSystem(pl.LightningModule):
    """Trains :class:`~vaenmf.models.vae_nmf.VAENMF` and hands on its dictionary ``max(W, 0)``.

    Logs, per epoch (named ``<prefix><metric>_epoch``): the means over the epoch's frames of ``loss`` (eq. 4),
    ``recon`` (-E_q log p(x|z), one sample), ``kl``, ``penalty`` (eq. 5, once per step: see
    :func:`~vaenmf.models.vae_nmf.nonnegativity_penalty`) and ``elbo`` (per frame, also on the progress bar);
    and, for the weight ``W`` as the epoch leaves it, ``neg_fraction`` / ``neg_mass``: the fraction of its entries
    below zero and their share of ``sum |w_ij|``, which :meth:`dictionary` clips to zero
    (:func:`~vaenmf.models.vae_nmf.negative_weight_stats`). The last epoch's values are what
    :meth:`dictionary_stats` returns.

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
        self._epoch_sums: torch.Tensor | None = None
        self._epoch_frames = 0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_factory is None:
            return torch.optim.Adam(self.parameters(), lr=1e-3, weight_decay=5e-4)
        return self.optimizer_factory(self.parameters())

    def on_train_epoch_start(self) -> None:
        self._epoch_sums = None
        self._epoch_frames = 0

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        if not bool(self.initialised):
            generator = torch.Generator(device=batch.device).manual_seed(self.hparams.seed)
            self.model.reset_dictionary(batch, generator=generator)
            self.initialised.fill_(True)
        out = self.model(batch)
        # Frame-weighted sums of the epoch's metrics, logged once per epoch (on_train_epoch_end): a `self.log`
        # per metric and step made small models' steps 60% slower (8.7 against 5.3 ms per step at m = 10, r = 4,
        # batch 128; a DB1 synergy fit went from 23 to 18.5 s per movement, measured).
        values = torch.stack([out[name] for name in EPOCH_METRICS]).detach()
        weighted = values * batch.shape[0]
        self._epoch_sums = weighted if self._epoch_sums is None else self._epoch_sums + weighted
        self._epoch_frames += batch.shape[0]
        return out["loss"]

    def on_train_epoch_end(self) -> None:
        if self._epoch_sums is None:
            return
        means = self._epoch_sums / self._epoch_frames
        prefix = self.hparams.log_prefix
        # The `_epoch` names are those Lightning gave these metrics when they were logged per step as well.
        metrics = {f"{prefix}{name}_epoch": value for name, value in zip(EPOCH_METRICS, means, strict=True)}
        # The weight the epoch leaves, not a mean over its steps: the last epoch's value is what is clipped.
        weight_stats = self.model.negative_weight_stats()
        metrics.update(
            {f"{prefix}{name}_epoch": value for name, value in zip(WEIGHT_METRICS, weight_stats, strict=True)}
        )
        elbo = metrics.pop(f"{prefix}elbo_epoch")
        self.log_dict(metrics, sync_dist=True)
        self.log(f"{prefix}elbo_epoch", elbo, prog_bar=True, sync_dist=True)

    @torch.no_grad()
    def dictionary_stats(self) -> dict[str, float]:
        """How nonnegative the trained decoder weight is, for ``metrics.json``.

        Returns:
            ``neg_fraction`` (fraction of the entries of ``W`` below zero), ``neg_mass`` (their share of
            ``sum |w_ij|``: what ``max(W, 0)`` throws away), as floats; the same keys as the vectorised trainer
            reports (:mod:`vaenmf.models.vae_nmf_stack`).

        References:
            Xie et al., eq. 4-5.
        """
        fraction, mass = self.model.negative_weight_stats()
        return {"neg_fraction": float(fraction), "neg_mass": float(mass)}

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
