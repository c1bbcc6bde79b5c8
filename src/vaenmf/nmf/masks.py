"""Wiener-type masks and fixed-dictionary source separation of magnitude spectrograms."""

from __future__ import annotations

import torch

from vaenmf.nmf.divergence import EPS
from vaenmf.nmf.updates import fit_activations


def wiener_mask(
    speech_model: torch.Tensor, noise_model: torch.Tensor, power: float = 2.0, eps: float = EPS
) -> torch.Tensor:
    """Soft mask ``S^p / (S^p + N^p + eps)`` from the two sources' model spectrograms.

    Shape:
        speech_model, noise_model: ``(..., F, T)`` nonnegative; output the same, in [0, 1].

    References:
        DESIGN.md section 5 (``p = 2``); Kang et al. 2014, eq. 9.
    """
    s = speech_model.clamp_min(0) ** power
    n = noise_model.clamp_min(0) ** power
    return s / (s + n + eps)


def separate_with_activations(
    mixture_mag: torch.Tensor,
    W_speech: torch.Tensor,
    W_noise: torch.Tensor,
    H_speech: torch.Tensor,
    H_noise: torch.Tensor,
    power: float = 2.0,
    eps: float = EPS,
) -> torch.Tensor:
    """Speech magnitude estimate ``mask * |Y|`` from given activations of the two dictionaries.

    Shape:
        mixture_mag: ``(F, T)``; W_speech ``(F, r_s)``; W_noise ``(F, r_n)``; H_speech ``(r_s, T)``;
        H_noise ``(r_n, T)``; output ``(F, T)``.
    """
    mask = wiener_mask(W_speech @ H_speech, W_noise @ H_noise, power=power, eps=eps)
    return mask * mixture_mag


def separate_mu(
    mixture_mag: torch.Tensor,
    W_speech: torch.Tensor,
    W_noise: torch.Tensor,
    beta: float = 1.0,
    n_iter: int = 100,
    power: float = 2.0,
    l1: float = 0.0,
    eps: float = EPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """NMF speech enhancement: activations of ``|Y|`` on ``[W^s W^n]`` held fixed, then the Wiener mask.

    Args:
        mixture_mag: Noisy magnitude spectrogram.
        W_speech, W_noise: Fixed dictionaries.
        beta: Divergence for the activation updates.
        n_iter: Number of H updates.
        power: Mask exponent ``p``.
        l1: L1 weight on the activations.

    Returns:
        The speech magnitude estimate and the stacked activations ``[H^s; H^n]``.

    Shape:
        mixture_mag: ``(F, T)``; W_speech ``(F, r_s)``; W_noise ``(F, r_n)``; outputs ``(F, T)`` and
        ``(r_s + r_n, T)``.

    References:
        DESIGN.md section 4 (the paper's NMF column).
    """
    W = torch.cat([W_speech, W_noise], dim=-1)
    H = fit_activations(mixture_mag, W, beta=beta, n_iter=n_iter, l1=l1, eps=eps)
    r_s = W_speech.shape[-1]
    estimate = separate_with_activations(
        mixture_mag, W_speech, W_noise, H[..., :r_s, :], H[..., r_s:, :], power, eps
    )
    return estimate, H
