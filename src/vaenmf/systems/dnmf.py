"""Discriminative NMF as a LightningModule: multiplicative updates of the reconstruction bases (manual optimisation)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader

from vaenmf.data.matrix import WholeBatch
from vaenmf.errors import ConfigError
from vaenmf.nmf.divergence import EPS, check_beta
from vaenmf.nmf.dnmf import check_mask_power, dnmf_objective, dnmf_update_
from vaenmf.systems.multiplicative import MultiplicativeUpdateSystem
from vaenmf.validation import as_nonnegative_tensor, check_int

#: Keys of a DNMF training batch.
BATCH_KEYS = ("M", "S", "H")


def dnmf_dataloader(M: torch.Tensor, S: torch.Tensor, H: torch.Tensor) -> DataLoader:
    """The loader :class:`DNMFSystem` trains on: one batch ``{"M", "S", "H"}`` holding every training frame.

    Args:
        M: Mixture magnitudes of all training mixtures, frames concatenated.
        S: The clean speech magnitudes of the same frames.
        H: Activations ``[H^s; H^n]`` of ``M`` with the analysis bases ``[W^s W^n]`` fixed.

    Shape:
        M, S: ``(m, n)``; H: ``(r_s + r_n, n)``.
    """
    if M.shape != S.shape or H.dim() != 2 or H.shape[1] != M.shape[1]:
        raise ConfigError(
            f"DNMF needs M and S of the same (m, n) shape and H of shape (r, n); got M {tuple(M.shape)}, "
            f"S {tuple(S.shape)}, H {tuple(H.shape)}"
        )
    return DataLoader(WholeBatch({"M": M, "S": S, "H": H}), batch_size=None)


class DNMFSystem(MultiplicativeUpdateSystem):
    """Trains the DNMF reconstruction bases ``Wb^s``, ``Wb^n``; one training step is one update of both.

    Every batch is the whole training set as a dict ``{"M": mixture magnitudes, "S": clean speech magnitudes,
    "H": [H^s; H^n]}`` (:func:`dnmf_dataloader`), so one epoch is one step and ``max_epochs`` is the number of
    updates. There is no optimiser: ``automatic_optimization`` is off and :func:`~vaenmf.nmf.dnmf.dnmf_update_`
    runs in :meth:`training_step`. The bases are buffers, so ``last.ckpt`` holds them and a killed job resumes.

    Args:
        W_speech, W_noise: The analysis bases; the reconstruction bases start as copies of them.
        beta: Divergence of the objective ``d_beta(S | S_hat_s)``.
        mask_power: Power ``p`` of the mask ``S_hat_s = Lambda_s^p / (Lambda_s^p + Lambda_n^p) * M`` the bases
            are trained for: the one the separator applies at test time (the speech task passes
            ``activations.mask_power``; :func:`vaenmf.tasks.dnmf.train_reconstruction_bases`).
        eval_every: Log the objective (per matrix entry) every this many steps, and at the last step.
        log_prefix: Prefix of the logged metric names (e.g. ``"dnmf_recon/"``).
        eps: Numerical floor.

    Shape:
        W_speech ``(m, r_s)``, W_noise ``(m, r_n)``. Batch: ``M``, ``S`` ``(m, n)``; ``H`` ``(r_s + r_n, n)``.

    References:
        Weninger, Le Roux, Hershey, Watanabe, "Discriminative NMF and its application to single-channel source
        separation", Interspeech 2014; DESIGN.md section 5.
    """

    def __init__(
        self,
        W_speech: torch.Tensor,
        W_noise: torch.Tensor,
        beta: float = 1.0,
        mask_power: float = 1.0,
        eval_every: int = 10,
        log_prefix: str = "",
        eps: float = EPS,
    ) -> None:
        super().__init__()
        check_beta(beta)
        check_mask_power(mask_power)
        check_int(eval_every, "eval_every", minimum=0, hint="0: never log")
        W_speech = as_nonnegative_tensor(W_speech, "DNMF speech analysis bases", dtype=torch.float32)
        W_noise = as_nonnegative_tensor(W_noise, "DNMF noise analysis bases", dtype=torch.float32)
        if W_speech.dim() != 2 or W_noise.dim() != 2 or W_speech.shape[0] != W_noise.shape[0]:
            raise ConfigError(
                "DNMF analysis bases must be (m, r_s) and (m, r_n) with the same m, got "
                f"{tuple(W_speech.shape)} and {tuple(W_noise.shape)}"
            )
        # The bases themselves are buffers (checkpointed), not hyperparameters.
        self.save_hyperparameters(ignore=["W_speech", "W_noise"])
        self.register_buffer("Wb_speech", W_speech.clone())
        self.register_buffer("Wb_noise", W_noise.clone())

    def _unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if not isinstance(batch, dict) or set(batch) != set(BATCH_KEYS):
            raise ConfigError(
                f"DNMFSystem expects each batch to be a dict with keys {list(BATCH_KEYS)} (see dnmf_dataloader), "
                f"got {type(batch).__name__}"
                + (f" with keys {sorted(batch)}" if isinstance(batch, dict) else "")
            )
        M, S, H = (batch[key].to(self.Wb_speech.dtype) for key in BATCH_KEYS)
        m, r_s = self.Wb_speech.shape
        r = r_s + self.Wb_noise.shape[1]
        if M.shape != S.shape or M.dim() != 2 or M.shape[0] != m or H.shape != (r, M.shape[1]):
            raise ConfigError(
                f"DNMFSystem expects M and S of shape ({m}, n) and H of shape ({r}, n); got M {tuple(M.shape)}, "
                f"S {tuple(S.shape)}, H {tuple(H.shape)}"
            )
        return M, S, H[:r_s], H[r_s:]

    def _objective(
        self, M: torch.Tensor, S: torch.Tensor, H_s: torch.Tensor, H_n: torch.Tensor
    ) -> torch.Tensor:
        hp = self.hparams
        return dnmf_objective(
            S, M, self.Wb_speech, self.Wb_noise, H_s, H_n, hp.beta, hp.eps, power=hp.mask_power
        )

    def objective(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``d_beta(S | S_hat_s)`` per matrix entry with the current reconstruction bases (mask power ``p``)."""
        M, S, H_s, H_n = self._unpack(batch)
        return self._objective(M, S, H_s, H_n) / S.numel()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        M, S, H_s, H_n = self._unpack(batch)
        hp = self.hparams
        dnmf_update_(S, M, self.Wb_speech, self.Wb_noise, H_s, H_n, hp.beta, hp.eps, power=hp.mask_power)
        self.count_step()
        epoch = self.current_epoch
        last = self.trainer.max_epochs is not None and epoch + 1 >= self.trainer.max_epochs
        if self.hparams.eval_every and (epoch % self.hparams.eval_every == 0 or last):
            D = self._objective(M, S, H_s, H_n)
            self.log(
                f"{self.hparams.log_prefix}objective",
                D / S.numel(),
                on_step=False,
                on_epoch=True,
                prog_bar=True,
                batch_size=1,  # one full batch; Lightning cannot infer a size from the dict
            )

    @torch.no_grad()
    def reconstruction_bases(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The trained ``(Wb_speech, Wb_noise)``, float32 on the CPU.

        Shape:
            ``(m, r_s)`` and ``(m, r_n)``.
        """
        return (
            self.Wb_speech.detach().to("cpu", torch.float32).clone(),
            self.Wb_noise.detach().to("cpu", torch.float32).clone(),
        )
