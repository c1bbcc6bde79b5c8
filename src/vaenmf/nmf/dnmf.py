"""Discriminative NMF: reconstruction bases trained so that the masked mixture recovers the clean speech.

The analysis bases ``W = [W^s W^n]`` (ordinary NMF dictionaries) give the activations ``H = [H^s; H^n]`` of a
mixture ``M``; separate reconstruction bases ``Wb_l`` (one per source ``l``) build the Wiener-type filter of
power ``p``

    Lambda_l = Wb_l H_l,  D = Lambda_s^p + Lambda_n^p + eps,  S_hat_s = Lambda_s^p / D * M,

and are trained, with ``H`` fixed, to minimise ``D_beta = d_beta(S | S_hat_s)`` against the clean speech ``S``.
``p = 1`` is Weninger et al.'s filter; ``p = 2`` is the Wiener mask the separators apply by default
(:func:`vaenmf.nmf.masks.wiener_mask`, whose ``eps`` sits at the same place), so the bases can be trained for the
very mask they are deployed with.

Layout (the paper's): ``M``, ``S`` are ``(m, n)`` with one column per frame, ``Wb_l`` is ``(m, r_l)`` and ``H_l``
is ``(r_l, n)``. Leading batch dimensions broadcast through ``matmul``; every function runs on the inputs'
device and floating dtype.

References:
    Weninger, Le Roux, Hershey, Watanabe, "Discriminative NMF and its application to single-channel source
    separation", Proc. Interspeech 2014, pp. 865-869, doi:10.21437/Interspeech.2014-218 (separate analysis and
    reconstruction bases, the multiplicative update of the reconstruction bases for ``p = 1``); DESIGN.md
    section 5. The ``p``-power update is derived in :func:`dnmf_gradient_terms`.
"""

from __future__ import annotations

import torch

from vaenmf.nmf.divergence import EPS, beta_divergence, check_beta
from vaenmf.validation import check_number

__all__ = [
    "check_mask_power",
    "dnmf_gradient_terms",
    "dnmf_objective",
    "dnmf_speech_estimate",
    "dnmf_update_",
]


def _t(A: torch.Tensor) -> torch.Tensor:
    return A.transpose(-2, -1)


def check_mask_power(power: object, key: str = "mask_power") -> float:
    """The mask power ``p`` as a float; ``p >= 1`` (``p < 1`` makes ``d S_hat / d Lambda`` infinite at 0)."""
    return check_number(power, key, at_least=1.0)


def _pow(x: torch.Tensor, power: float) -> torch.Tensor:
    return x if power == 1 else x**power


def _mask(
    Lambda_s: torch.Tensor, Lambda_n: torch.Tensor, power: float, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(A, B, D)`` with ``A = Lambda_s^p``, ``B = Lambda_n^p``, ``D = A + B + eps``."""
    A, B = _pow(Lambda_s, power), _pow(Lambda_n, power)
    return A, B, A + B + eps


def dnmf_speech_estimate(
    M: torch.Tensor,
    Wb_speech: torch.Tensor,
    Wb_noise: torch.Tensor,
    H_speech: torch.Tensor,
    H_noise: torch.Tensor,
    eps: float = EPS,
    power: float = 1.0,
) -> torch.Tensor:
    """Speech estimate ``S_hat_s = Lambda_s^p / (Lambda_s^p + Lambda_n^p + eps) * M`` of the DNMF objective.

    Args:
        M: Mixture magnitudes, nonnegative.
        Wb_speech, Wb_noise: Reconstruction bases.
        H_speech, H_noise: Activations of ``M`` computed with the analysis bases.
        eps: Added to the denominator so that silent bins give a zero estimate, not NaN.
        power: Mask power ``p >= 1`` (1: Weninger et al.; 2: the separators' default Wiener mask).

    Shape:
        M: ``(..., m, n)``; Wb_speech ``(..., m, r_s)``; Wb_noise ``(..., m, r_n)``; H_speech ``(..., r_s, n)``;
        H_noise ``(..., r_n, n)``; output ``(..., m, n)``.

    References:
        Weninger et al., Interspeech 2014 (the Wiener-filtered source estimate); DESIGN.md section 5 (the mask
        of power ``p``).
    """
    power = check_mask_power(power, "power")
    A, _, D = _mask(Wb_speech @ H_speech, Wb_noise @ H_noise, power, eps)
    return A / D * M


def dnmf_objective(
    S: torch.Tensor,
    M: torch.Tensor,
    Wb_speech: torch.Tensor,
    Wb_noise: torch.Tensor,
    H_speech: torch.Tensor,
    H_noise: torch.Tensor,
    beta: float = 1.0,
    eps: float = EPS,
    reduction: str = "sum",
    power: float = 1.0,
) -> torch.Tensor:
    """The discriminative objective ``D_beta = d_beta(S | S_hat_s)`` for the mask of power ``p``.

    Args:
        S: Clean speech magnitudes (the target).
        M: Mixture magnitudes.
        Wb_speech, Wb_noise: Reconstruction bases.
        H_speech, H_noise: Activations of ``M`` with the analysis bases.
        beta: Divergence parameter (0 IS, 1 KL, 2 Euclidean).
        eps: Floor of the mask's denominator and of the estimate inside the divergence.
        reduction: ``"sum"``, ``"mean"`` or ``"none"`` (as :func:`~vaenmf.nmf.divergence.beta_divergence`).
        power: Mask power ``p`` (:func:`dnmf_speech_estimate`).

    Shape:
        S, M: ``(..., m, n)``; bases and activations as in :func:`dnmf_speech_estimate`; output a scalar (or
        ``(..., m, n)`` for ``reduction="none"``).

    References:
        Weninger et al., Interspeech 2014 (the discriminative objective); DESIGN.md section 5.
    """
    S_hat = dnmf_speech_estimate(M, Wb_speech, Wb_noise, H_speech, H_noise, eps=eps, power=power)
    return beta_divergence(S, S_hat, beta, reduction=reduction, eps=eps)


def dnmf_gradient_terms(
    S: torch.Tensor,
    M: torch.Tensor,
    Wb_speech: torch.Tensor,
    Wb_noise: torch.Tensor,
    H_speech: torch.Tensor,
    H_noise: torch.Tensor,
    beta: float = 1.0,
    eps: float = EPS,
    power: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradient of ``D_beta`` in each reconstruction basis, split into its positive and negative parts.

    Derivation (elementwise ``*``, ``/``; ``A = Lambda_s^p``, ``B = Lambda_n^p``, ``D = A + B + eps``,
    ``S_hat = A / D * M``). The divergence's derivative is ``d d_beta / d S_hat = S_hat^(beta-1) -
    S * S_hat^(beta-2)``, a difference of two nonnegative terms. The estimate's derivatives are

    - ``d S_hat / d Lambda_s = p M Lambda_s^(p-1) (B + eps) / D^2 =: G_s >= 0``,
    - ``d S_hat / d Lambda_n = -p M A Lambda_n^(p-1) / D^2 =: -G_n <= 0``,

    and ``d Lambda_l / d Wb_l`` contracts with ``H_l^T``. Hence ``dD_beta/dWb_s = P_s - N_s`` and
    ``dD_beta/dWb_n = P_n - N_n`` with

    - ``P_s = (S_hat^(beta-1) * G_s) H_s^T``,  ``N_s = (S * S_hat^(beta-2) * G_s) H_s^T``;
    - ``P_n = (S * S_hat^(beta-2) * G_n) H_n^T``,  ``N_n = (S_hat^(beta-1) * G_n) H_n^T``

    (the noise basis swaps the parts because raising ``Lambda_n`` lowers the estimate). For ``p = 1``,
    ``G_s = M (Lambda_n + eps) / Lambda^2`` and ``G_n = M Lambda_s / Lambda^2`` with ``Lambda = D``: DESIGN.md's
    update (up to the ``eps`` in ``Lambda_n + eps``, which is the exact derivative of the objective as defined
    and makes ``P - N`` equal autograd's gradient to rounding). The common factor ``p`` cancels in the update's
    ratio but is kept so that ``P - N`` is the gradient. ``S_hat`` is floored at ``eps`` inside negative powers
    (silent bins); ``G_s``, ``G_n`` are computed as ``p M Lambda_s^(p-1) ((B + eps) / D) / D`` and
    ``p M (A / D) Lambda_n^(p-1) / D`` so that no ``D^2`` (``Lambda^4`` for ``p = 2``) is formed.

    Args:
        S, M: Clean speech and mixture magnitudes.
        Wb_speech, Wb_noise: Reconstruction bases.
        H_speech, H_noise: Activations of ``M`` with the analysis bases.
        beta: Divergence of the objective.
        eps: Numerical floor.
        power: Mask power ``p >= 1``.

    Returns:
        ``(P_s, N_s, P_n, N_n)``, all nonnegative.

    Shape:
        S, M: ``(..., m, n)``; Wb_speech ``(..., m, r_s)``; Wb_noise ``(..., m, r_n)``; H_speech ``(..., r_s, n)``;
        H_noise ``(..., r_n, n)``; outputs ``(..., m, r_s)``, ``(..., m, r_s)``, ``(..., m, r_n)``,
        ``(..., m, r_n)``.

    References:
        Weninger et al., Interspeech 2014 (the multiplicative update, ``p = 1``); DESIGN.md section 5.
    """
    beta = check_beta(beta)
    power = check_mask_power(power, "power")
    Lambda_s = Wb_speech @ H_speech
    Lambda_n = Wb_noise @ H_noise
    P_s, N_s = _speech_terms(S, M, Lambda_s, Lambda_n, H_speech, beta, eps, power)
    P_n, N_n = _noise_terms(S, M, Lambda_s, Lambda_n, H_noise, beta, eps, power)
    return P_s, N_s, P_n, N_n


def _divergence_factors(
    S: torch.Tensor, S_hat: torch.Tensor, beta: float, eps: float
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """``(up, down)`` with ``d d_beta / d S_hat = up - down``; ``up`` is ``None`` when it is 1 (beta = 1)."""
    S_hat = S_hat.clamp_min_(eps)
    if beta == 1:
        return None, S / S_hat
    if beta == 2:
        return S_hat, S
    return S_hat ** (beta - 1), S * S_hat ** (beta - 2)


def _times(up: torch.Tensor | None, weight: torch.Tensor) -> torch.Tensor:
    return weight if up is None else up * weight


def _speech_terms(
    S: torch.Tensor,
    M: torch.Tensor,
    Lambda_s: torch.Tensor,
    Lambda_n: torch.Tensor,
    H_speech: torch.Tensor,
    beta: float,
    eps: float,
    power: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    A, B, D = _mask(Lambda_s, Lambda_n, power, eps)
    up, down = _divergence_factors(S, A / D * M, beta, eps)
    weight = (B + eps).div_(D).div_(D).mul_(M)  # G_s = p M Lambda_s^(p-1) (B + eps) / D^2
    if power != 1:
        weight.mul_(power * _pow(Lambda_s, power - 1))
    Hs_t = _t(H_speech)
    return _times(up, weight) @ Hs_t, (down * weight) @ Hs_t


def _noise_terms(
    S: torch.Tensor,
    M: torch.Tensor,
    Lambda_s: torch.Tensor,
    Lambda_n: torch.Tensor,
    H_noise: torch.Tensor,
    beta: float,
    eps: float,
    power: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    A, _, D = _mask(Lambda_s, Lambda_n, power, eps)
    q = A / D
    up, down = _divergence_factors(S, q * M, beta, eps)
    weight = q.div_(D).mul_(M)  # G_n = p M A Lambda_n^(p-1) / D^2
    if power != 1:
        weight.mul_(power * _pow(Lambda_n, power - 1))
    Hn_t = _t(H_noise)
    return (down * weight) @ Hn_t, _times(up, weight) @ Hn_t


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor, eps: float) -> torch.Tensor:
    # Where the gradient's both parts vanish (a basis vector that no training frame activates, a frequency bin
    # that is zero in every mixture) the objective does not depend on the entry: keep it (factor 1) instead of
    # zeroing it through 0 / eps, so that an atom unused in training still works at test time.
    return torch.where(denominator > 0, numerator / denominator.clamp_min(eps), torch.ones_like(numerator))


def dnmf_update_(
    S: torch.Tensor,
    M: torch.Tensor,
    Wb_speech: torch.Tensor,
    Wb_noise: torch.Tensor,
    H_speech: torch.Tensor,
    H_noise: torch.Tensor,
    beta: float = 1.0,
    eps: float = EPS,
    power: float = 1.0,
) -> None:
    """One multiplicative update of both reconstruction bases, in place: ``Wb_s`` first, then ``Wb_n``.

    ``Wb_s <- Wb_s * N_s / P_s`` and then, with the new ``Wb_s``, ``Wb_n <- Wb_n * N_n / P_n``
    (:func:`dnmf_gradient_terms`, for the mask of power ``p``), i.e. DESIGN.md's update for ``p = 1``. The factor
    is below 1 exactly where the gradient is positive, so each entry moves against the gradient and stays
    nonnegative. Like most gradient-ratio updates it carries no monotonicity proof; the tests measure that it
    descends for ``beta`` in {0, 1, 2} and ``p`` in {1, 2}. The sources are updated one after the other (as the
    alternating NMF updates are) so the noise update sees the new speech bases.

    Args:
        S: Clean speech magnitudes.
        M: Mixture magnitudes.
        Wb_speech, Wb_noise: Reconstruction bases, updated in place.
        H_speech, H_noise: Fixed activations of ``M`` with the analysis bases.
        beta: Divergence of the objective.
        eps: Numerical floor.
        power: Mask power ``p >= 1`` the bases are trained for.

    Shape:
        As :func:`dnmf_gradient_terms`.

    References:
        Weninger et al., Interspeech 2014 (the multiplicative update); DESIGN.md section 5.
    """
    beta = check_beta(beta)
    power = check_mask_power(power, "power")
    Lambda_n = Wb_noise @ H_noise
    P_s, N_s = _speech_terms(S, M, Wb_speech @ H_speech, Lambda_n, H_speech, beta, eps, power)
    Wb_speech.mul_(_ratio(N_s, P_s, eps))
    # Only Lambda_s changed; the noise terms are computed at the new speech bases.
    P_n, N_n = _noise_terms(S, M, Wb_speech @ H_speech, Lambda_n, H_noise, beta, eps, power)
    Wb_noise.mul_(_ratio(N_n, P_n, eps))
