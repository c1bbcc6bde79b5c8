"""Lee-Seung NMF as a LightningModule: multiplicative updates under the Trainer (manual optimisation)."""

from __future__ import annotations

import torch

from vaenmf.errors import ConfigError
from vaenmf.nmf.divergence import EPS, beta_divergence, check_beta
from vaenmf.nmf.fit import init_factors, normalize_dictionary
from vaenmf.nmf.updates import nmf_iteration_
from vaenmf.systems.multiplicative import MultiplicativeUpdateSystem
from vaenmf.validation import as_nonnegative_tensor, check_int, check_rank


class NMFSystem(MultiplicativeUpdateSystem):
    """Fits ``X ~ W H`` by multiplicative updates; one training step is ``updates_per_step`` iterations.

    The data module must yield the whole ``(m, n)`` matrix as each batch (``MatrixDataModule(batch_size=None)``),
    so one epoch is one step. There is no optimiser: ``automatic_optimization`` is off and the updates run in
    :meth:`training_step`, which keeps NMF under the same Trainer, logger, checkpointing and device placement
    as the trained models. The factors are buffers, so ``last.ckpt`` holds them and a killed job resumes.

    Args:
        n_features: ``m``, rows of X.
        n_frames: ``n``, columns of X.
        rank: ``r``.
        beta: Divergence (0 IS, 1 KL, 2 Euclidean).
        l1: L1 weight on H.
        updates_per_step: Iterations per training step.
        eval_every: Log the divergence every this many steps (it costs one ``W @ H``).
        seed: Seed of the initial factors.
        normalize: Column norm of the dictionary handed on (``"l2"``, ``"l1"`` or ``"none"``).
        log_prefix: Prefix of the logged metric names (e.g. ``"speech_dict/"``).

    Shape:
        Batches: ``(m, n)``. ``W``: ``(m, r)``; ``H``: ``(r, n)``.

    References:
        Lee and Seung 2000; the paper's NMF baseline (Sec. 3).
    """

    def __init__(
        self,
        n_features: int,
        n_frames: int,
        rank: int = 40,
        beta: float = 1.0,
        l1: float = 0.0,
        updates_per_step: int = 1,
        eval_every: int = 10,
        seed: int = 0,
        normalize: str = "l2",
        log_prefix: str = "",
    ) -> None:
        super().__init__()
        check_rank(rank, (n_features, n_frames))
        check_beta(beta)
        check_int(updates_per_step, "updates_per_step", minimum=1)
        self.save_hyperparameters()
        self.register_buffer("W", torch.zeros(n_features, rank))
        self.register_buffer("H", torch.zeros(rank, n_frames))
        self.register_buffer("initialised", torch.tensor(False))

    def _initialise(self, X: torch.Tensor) -> None:
        W, H = init_factors(X, self.hparams.rank, seed=self.hparams.seed)
        self.W.copy_(W)
        self.H.copy_(H)
        self.initialised.fill_(True)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        X = batch
        if X.shape != (self.hparams.n_features, self.hparams.n_frames):
            raise ConfigError(
                f"NMFSystem expects the whole ({self.hparams.n_features}, {self.hparams.n_frames}) matrix as each "
                f"batch (MatrixDataModule with batch_size=None), got a batch of shape {tuple(X.shape)}"
            )
        X = X.to(self.W.dtype)
        if not bool(self.initialised):
            as_nonnegative_tensor(X, "dictionary training data")
            self._initialise(X)
        for _ in range(self.hparams.updates_per_step):
            nmf_iteration_(X, self.W, self.H, beta=self.hparams.beta, l1=self.hparams.l1, eps=EPS)
        self.count_step()
        epoch = self.current_epoch
        last = self.trainer.max_epochs is not None and epoch + 1 >= self.trainer.max_epochs
        if self.hparams.eval_every and (epoch % self.hparams.eval_every == 0 or last):
            loss = beta_divergence(X, self.W @ self.H, self.hparams.beta) / X.numel()
            self.log(
                f"{self.hparams.log_prefix}divergence", loss, on_step=False, on_epoch=True, prog_bar=True
            )

    @torch.no_grad()
    def dictionary(self) -> torch.Tensor:
        """The fitted dictionary, columns normalised, on the CPU.

        Shape:
            ``(m, r)``.
        """
        if self.hparams.normalize == "none":
            return self.W.detach().cpu().clone()
        W, _ = normalize_dictionary(self.W.detach(), norm=self.hparams.normalize)
        return W.cpu()
