"""Discriminative NMF: reconstruction bases trained so that the masked mixture recovers the clean speech.

The analysis bases ``W = [W^s W^n]`` (ordinary NMF dictionaries) give the activations ``H = [H^s; H^n]`` of a
mixture ``M``; separate reconstruction bases ``Wb_l`` (one per source ``l``) build the Wiener-type filter

    Lambda_l = Wb_l H_l,  Lambda = Lambda_s + Lambda_n + eps,  S_hat_s = Lambda_s / Lambda * M,

and are trained, with ``H`` fixed, to minimise ``D = d_beta(S | S_hat_s)`` against the clean speech ``S``.

Layout (the paper's): ``M``, ``S`` are ``(m, n)`` with one column per frame, ``Wb_l`` is ``(m, r_l)`` and ``H_l``
is ``(r_l, n)``. Leading batch dimensions broadcast through ``matmul``; every function runs on the inputs'
device and floating dtype.

References:
    Weninger, Le Roux, Hershey, Watanabe, "Discriminative NMF and its application to single-channel source
    separation", Proc. Interspeech 2014, pp. 865-869, doi:10.21437/Interspeech.2014-218 (separate analysis and
    reconstruction bases, the multiplicative update of the reconstruction bases); DESIGN.md section 5.
"""

from __future__ import annotations

import torch

from vaenmf.nmf.divergence import EPS, beta_divergence, check_beta


def _t(A: torch.Tensor) -> torch.Tensor:
    return A.transpose(-2, -1)


def dnmf_speech_estimate(
    M: torch.Tensor,
    Wb_speech: torch.Tensor,
    Wb_noise: torch.Tensor,
    H_speech: torch.Tensor,
    H_noise: torch.Tensor,
    eps: float = EPS,
) -> torch.Tensor:
    """Speech estimate ``S_hat_s = Lambda_s / (Lambda_s + Lambda_n + eps) * M`` of the DNMF objective (mask p = 1).

    Args:
        M: Mixture magnitudes, nonnegative.
        Wb_speech, Wb_noise: Reconstruction bases.
        H_speech, H_noise: Activations of ``M`` computed with the analysis bases.
        eps: Added to ``Lambda`` so that silent bins give a zero estimate, not NaN.

    Shape:
        M: ``(..., m, n)``; Wb_speech ``(..., m, r_s)``; Wb_noise ``(..., m, r_n)``; H_speech ``(..., r_s, n)``;
        H_noise ``(..., r_n, n)``; output ``(..., m, n)``.

    References:
        Weninger et al., Interspeech 2014 (the Wiener-filtered source estimate).
    """
    Lambda_s = Wb_speech @ H_speech
    Lambda = Lambda_s + Wb_noise @ H_noise + eps
    return Lambda_s / Lambda * M


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
) -> torch.Tensor:
    """The discriminative objective ``D = d_beta(S | S_hat_s)``.

    Args:
        S: Clean speech magnitudes (the target).
        M: Mixture magnitudes.
        Wb_speech, Wb_noise: Reconstruction bases.
        H_speech, H_noise: Activations of ``M`` with the analysis bases.
        beta: Divergence parameter (0 IS, 1 KL, 2 Euclidean).
        eps: Floor of ``Lambda`` and of the estimate inside the divergence.
        reduction: ``"sum"``, ``"mean"`` or ``"none"`` (as :func:`~vaenmf.nmf.divergence.beta_divergence`).

    Shape:
        S, M: ``(..., m, n)``; bases and activations as in :func:`dnmf_speech_estimate`; output a scalar (or
        ``(..., m, n)`` for ``reduction="none"``).

    References:
        Weninger et al., Interspeech 2014 (the discriminative objective); DESIGN.md section 5.
    """
    S_hat = dnmf_speech_estimate(M, Wb_speech, Wb_noise, H_speech, H_noise, eps=eps)
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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradient of ``D`` in each reconstruction basis, split into its positive and negative parts.

    ``dD/dWb_s = P_s - N_s`` and ``dD/dWb_n = P_n - N_n`` with (``*`` and ``/`` elementwise)

    - ``P_s = (S_hat^(beta-1) * M * Lambda_n / Lambda^2) H_s^T``,
      ``N_s = (S * S_hat^(beta-2) * M * Lambda_n / Lambda^2) H_s^T``;
    - ``P_n = (S * S_hat^(beta-2) * M * Lambda_s / Lambda^2) H_n^T``,
      ``N_n = (S_hat^(beta-1) * M * Lambda_s / Lambda^2) H_n^T``.

    ``Lambda_n`` in ``P_s``/``N_s`` is taken as ``Lambda_n + eps`` (``= Lambda - Lambda_s``), the exact
    derivative of the objective as defined with ``Lambda = Lambda_s + Lambda_n + eps``; it differs from
    DESIGN.md's formula by the ``eps`` alone, and makes ``P - N`` equal autograd's gradient to rounding.
    ``S_hat`` is floored at ``eps`` inside negative powers (silent bins).

    Returns:
        ``(P_s, N_s, P_n, N_n)``, all nonnegative.

    Shape:
        S, M: ``(..., m, n)``; Wb_speech ``(..., m, r_s)``; Wb_noise ``(..., m, r_n)``; H_speech ``(..., r_s, n)``;
        H_noise ``(..., r_n, n)``; outputs ``(..., m, r_s)``, ``(..., m, r_s)``, ``(..., m, r_n)``,
        ``(..., m, r_n)``.

    References:
        Weninger et al., Interspeech 2014 (the multiplicative update); DESIGN.md section 5.
    """
    beta = check_beta(beta)
    Lambda_s = Wb_speech @ H_speech
    Lambda_n = Wb_noise @ H_noise
    P_s, N_s = _speech_terms(S, M, Lambda_s, Lambda_n, H_speech, beta, eps)
    P_n, N_n = _noise_terms(S, M, Lambda_s, Lambda_n, H_noise, beta, eps)
    return P_s, N_s, P_n, N_n


def _common_factors(
    S: torch.Tensor, M: torch.Tensor, Lambda_s: torch.Tensor, Lambda_n: torch.Tensor, beta: float, eps: float
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """``(up, down, M / Lambda^2)`` with ``dD/dS_hat = up - down``; ``up`` is ``None`` when it is 1 (beta = 1)."""
    Lambda = Lambda_s + Lambda_n + eps
    scale = M / Lambda**2
    S_hat = (Lambda_s * M / Lambda).clamp_min_(eps)
    if beta == 1:
        return None, S / S_hat, scale
    if beta == 2:
        return S_hat, S, scale
    return S_hat ** (beta - 1), S * S_hat ** (beta - 2), scale


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
) -> tuple[torch.Tensor, torch.Tensor]:
    up, down, scale = _common_factors(S, M, Lambda_s, Lambda_n, beta, eps)
    weight = scale.mul_(Lambda_n + eps)  # dS_hat/dLambda_s
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
) -> tuple[torch.Tensor, torch.Tensor]:
    up, down, scale = _common_factors(S, M, Lambda_s, Lambda_n, beta, eps)
    weight = scale.mul_(Lambda_s)  # -dS_hat/dLambda_n
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
) -> None:
    """One multiplicative update of both reconstruction bases, in place: ``Wb_s`` first, then ``Wb_n``.

    ``Wb_s <- Wb_s * N_s / P_s`` and then, with the new ``Wb_s``, ``Wb_n <- Wb_n * N_n / P_n``
    (:func:`dnmf_gradient_terms`), i.e. DESIGN.md's update for ``Wb_s`` and for ``Wb_n`` the same with numerator
    and denominator swapped and ``Lambda_s`` in place of ``Lambda_n``. The factor is below 1 exactly where the
    gradient is positive, so each entry moves against the gradient and stays nonnegative. Like most
    gradient-ratio updates it carries no monotonicity proof; the tests measure that it descends. The sources are
    updated one after the other (as the alternating NMF updates are) so the noise update sees the new speech
    bases.

    Args:
        S: Clean speech magnitudes.
        M: Mixture magnitudes.
        Wb_speech, Wb_noise: Reconstruction bases, updated in place.
        H_speech, H_noise: Fixed activations of ``M`` with the analysis bases.
        beta: Divergence of the objective.
        eps: Numerical floor.

    Shape:
        As :func:`dnmf_gradient_terms`.

    References:
        Weninger et al., Interspeech 2014 (the multiplicative update); DESIGN.md section 5.
    """
    beta = check_beta(beta)
    Lambda_n = Wb_noise @ H_noise
    P_s, N_s = _speech_terms(S, M, Wb_speech @ H_speech, Lambda_n, H_speech, beta, eps)
    Wb_speech.mul_(_ratio(N_s, P_s, eps))
    # Only Lambda_s changed; the noise terms are computed at the new speech bases.
    P_n, N_n = _noise_terms(S, M, Wb_speech @ H_speech, Lambda_n, H_noise, beta, eps)
    Wb_noise.mul_(_ratio(N_n, P_n, eps))
