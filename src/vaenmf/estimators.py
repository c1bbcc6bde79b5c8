"""scikit-learn-style estimators over the Lightning systems, for people who do not use Hydra."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from vaenmf.callbacks import FiniteLossGuard
from vaenmf.data.matrix import MatrixDataModule
from vaenmf.errors import ConfigError, VaenmfError
from vaenmf.models.gamma import posterior_activations
from vaenmf.validation import as_nonnegative_tensor, check_int, check_rank, check_scale


def _accelerator(device: str | torch.device) -> str:
    kind = torch.device(device).type
    return {"cuda": "gpu"}.get(kind, kind)


class VAENMFEstimator:
    """Fit VAE-NMF on a data matrix and read its dictionary and posterior activations.

    Trains :class:`~vaenmf.systems.VAENMFSystem` under a Lightning Trainer (no logger, no checkpoints).

    Args:
        rank: Number of atoms ``r``.
        max_epochs: Training epochs.
        batch_size: Frames per batch (paper: 128).
        lr, weight_decay: Adam settings (paper: 1e-3, 5e-4).
        seed: Seed of the initialisation, batch order and posterior samples.
        device: ``"cpu"``, ``"cuda"``, ...
        progress: Show Lightning's progress bar.
        **model_kwargs: Passed to :class:`~vaenmf.models.vae_nmf.VAENMF` (``likelihood``, ``sampler``,
            ``hidden``, ``prior_shape``, ``penalty_weight``, ``noise_var``, ...).

    Attributes:
        dictionary_: ``(m, r)`` numpy array ``max(W, 0)`` with unit-L2 columns, after :meth:`fit`.
        system_: The trained system.

    Shape:
        X: ``(m, n)`` nonnegative, one column per frame (the paper's layout).

    References:
        Xie et al., sec. 2.2-3.
    """

    def __init__(
        self,
        rank: int = 40,
        max_epochs: int = 60,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 5e-4,
        seed: int = 0,
        device: str | torch.device = "cpu",
        progress: bool = False,
        **model_kwargs: Any,
    ) -> None:
        # Checked here, before any fit: Lightning reads max_epochs=-1 as "no limit" and would never return.
        self.rank = rank
        self.max_epochs = check_int(max_epochs, "max_epochs", 1)
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.device = device
        self.progress = progress
        self.model_kwargs = model_kwargs
        self.system_: Any = None
        self.dictionary_: np.ndarray | None = None
        self._column_norms: torch.Tensor | None = None

    def fit(self, X: np.ndarray | torch.Tensor) -> VAENMFEstimator:
        """Train on the columns of ``X``; returns ``self``."""
        from vaenmf.systems.vae_nmf import VAENMFSystem

        X = as_nonnegative_tensor(X, "X", dtype=torch.float32)
        check_rank(self.rank, tuple(X.shape))
        check_scale(X, "X")
        pl.seed_everything(self.seed, workers=True, verbose=False)

        def optimizer(params: Any) -> torch.optim.Optimizer:
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)

        try:
            system = VAENMFSystem(
                X.shape[0],
                self.rank,
                optimizer=optimizer,
                seed=self.seed,
                normalize="none",
                **self.model_kwargs,
            )
        except TypeError as err:
            raise ConfigError(f"VAENMFEstimator got an unknown option: {err}") from None
        trainer = pl.Trainer(
            accelerator=_accelerator(self.device),
            devices=1,
            max_epochs=int(self.max_epochs),
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=self.progress,
            enable_model_summary=False,
            callbacks=[
                FiniteLossGuard("VAE-NMF fit", f"X ranges over [{float(X.min()):.3g}, {float(X.max()):.3g}]")
            ],
        )
        trainer.fit(system, datamodule=MatrixDataModule(X, batch_size=int(self.batch_size), seed=self.seed))
        self.system_ = system.cpu().eval()
        W = system.dictionary()
        self._column_norms = W.norm(dim=0).clamp_min(1e-12)
        self.dictionary_ = (W / self._column_norms).numpy()
        return self

    def _check_fitted(self) -> None:
        if self.system_ is None:
            raise VaenmfError("this VAENMFEstimator is not fitted yet: call fit(X) first")

    @torch.no_grad()
    def posterior(self, X: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Shape and rate of ``q(z | x)`` for every column of ``X``, in the units of ``dictionary_``.

        Shape:
            X: ``(m, n)``; returns alpha and beta, each ``(r, n)``.
        """
        self._check_fitted()
        x = as_nonnegative_tensor(X, "X", dtype=torch.float32).T
        alpha, beta = self.system_.model.encode(x)
        # dictionary_ has unit columns: scale the activations so that X ~ dictionary_ @ Z (rate / norm).
        beta = beta / self._column_norms
        return alpha.T.numpy(), beta.T.numpy()

    def encode(
        self, X: np.ndarray | torch.Tensor, kind: str = "mean", n_samples: int = 1, seed: int | None = None
    ) -> np.ndarray:
        """Activations of ``X`` under the posterior: its mean, or samples from it.

        Args:
            X: Nonnegative data.
            kind: ``"mean"`` (``alpha / beta``) or ``"sample"``.
            n_samples: Number of samples when ``kind="sample"`` (at least 1).
            seed: Seed of the samples (default: the estimator's seed).

        Returns:
            ``(r, n)`` for the mean or one sample, ``(n_samples, r, n)`` for several samples.
        """
        n_samples = check_int(n_samples, "n_samples", 1)
        alpha, beta = (torch.from_numpy(a) for a in self.posterior(X))
        generator = torch.Generator().manual_seed(self.seed if seed is None else seed)
        draws = n_samples if kind == "sample" and n_samples > 1 else None
        return posterior_activations(alpha, beta, kind, generator, draws).numpy()

    def reconstruct(
        self, X: np.ndarray | torch.Tensor, kind: str = "mean", seed: int | None = None
    ) -> np.ndarray:
        """``dictionary_ @ encode(X)``.

        Shape:
            X: ``(m, n)``; returns ``(m, n)``.
        """
        return self.dictionary_ @ self.encode(X, kind=kind, seed=seed)
