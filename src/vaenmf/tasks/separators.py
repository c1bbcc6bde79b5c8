"""Activation estimators of the speech task: given ``[W^s W^n]`` and a noisy magnitude, estimate the speech."""

from __future__ import annotations

from typing import Protocol

import torch
from omegaconf import DictConfig

from vaenmf.errors import ConfigError
from vaenmf.nmf.masks import separate_mu


class Separator(Protocol):
    """Maps a noisy magnitude spectrogram ``(F, T)`` to a speech magnitude estimate ``(F, T)``."""

    def __call__(self, mixture_mag: torch.Tensor) -> torch.Tensor: ...


class MUSeparator:
    """Multiplicative-update activations with both dictionaries fixed, then the Wiener-type mask.

    Args:
        W_speech, W_noise: Dictionaries ``(F, r_s)`` and ``(F, r_n)``.
        beta: Divergence of the activation updates.
        n_iter: Number of updates.
        l1: L1 weight on the activations.
        mask_power: Exponent ``p`` of the mask.
    """

    def __init__(
        self,
        W_speech: torch.Tensor,
        W_noise: torch.Tensor,
        beta: float = 1.0,
        n_iter: int = 100,
        l1: float = 0.0,
        mask_power: float = 2.0,
    ) -> None:
        self.W_speech = W_speech
        self.W_noise = W_noise
        self.beta = beta
        self.n_iter = n_iter
        self.l1 = l1
        self.mask_power = mask_power

    def __call__(self, mixture_mag: torch.Tensor) -> torch.Tensor:
        estimate, _ = separate_mu(
            mixture_mag.to(self.W_speech.dtype),
            self.W_speech,
            self.W_noise,
            beta=self.beta,
            n_iter=self.n_iter,
            power=self.mask_power,
            l1=self.l1,
        )
        return estimate


def build_mu_separator(cfg: DictConfig, W_speech: torch.Tensor, W_noise: torch.Tensor) -> MUSeparator:
    """The ``separator=mu`` estimator from its config group."""
    unknown = set(cfg.keys()) - {"name", "beta", "n_iter", "l1", "mask_power"}
    if unknown:
        raise ConfigError(f"separator=mu does not take the keys {sorted(unknown)}")
    return MUSeparator(
        W_speech, W_noise, beta=float(cfg.beta), n_iter=int(cfg.n_iter), l1=float(cfg.l1), mask_power=float(cfg.mask_power)
    )
