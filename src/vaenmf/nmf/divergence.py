"""Beta-divergences between nonnegative matrices.

References:
    Fevotte and Idier, "Algorithms for nonnegative matrix factorization with the beta-divergence",
    Neural Computation 23(9), 2011, eq. 2-4. Lee and Seung 2000 for beta = 1 and 2.
"""

from __future__ import annotations

import torch

from vaenmf.errors import ConfigError
from vaenmf.validation import check_number

#: Floor applied to the model ``Y`` (and to ``X`` inside logarithms) so the divergences stay finite.
EPS = 1e-12


def check_beta(beta: float) -> float:
    """Return ``beta`` as a float, rejecting values the divergence is not defined for here."""
    return check_number(beta, "beta", hint="0 = Itakura-Saito, 1 = KL, 2 = Euclidean")


#: Reductions accepted by :func:`beta_divergence`.
REDUCTIONS = ("sum", "mean", "none", "per_matrix")


def beta_divergence(
    X: torch.Tensor,
    Y: torch.Tensor,
    beta: float,
    reduction: str = "sum",
    eps: float = EPS,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Elementwise beta-divergence d_beta(X | Y), reduced.

    ``beta = 2``: ``1/2 (x - y)^2``; ``beta = 1``: generalised KL ``x log(x/y) - x + y`` (with ``0 log 0 = 0``);
    ``beta = 0``: Itakura-Saito ``x/y - log(x/y) - 1``; otherwise
    ``(x^b + (b - 1) y^b - b x y^(b - 1)) / (b (b - 1))``.

    Args:
        X: Data, nonnegative.
        Y: Model (e.g. ``W @ H``), nonnegative; floored at ``eps``.
        beta: The divergence's parameter.
        reduction: ``"sum"`` (default), ``"mean"``, ``"none"``, or ``"per_matrix"`` (the sum over the last two
            dimensions: one divergence per matrix of a batch).
        eps: Floor for ``Y`` (and for ``X`` where it enters a logarithm or a negative power).
        mask: Optional weights broadcastable to the elementwise divergence, e.g. a ``(B, 1, n)`` 0/1 column mask
            of a padded batch of problems of different lengths: masked entries contribute exactly nothing (they
            are zeroed, not just down-weighted, so a NaN or inf there cannot leak into the sum). ``"mean"``
            divides by the mask's total weight (broadcast to the data) instead of the number of entries.

    Shape:
        X, Y: any broadcastable shapes, usually ``(..., m, n)``; mask: broadcastable to them, e.g.
        ``(..., 1, n)``. Output: scalar, ``(...)`` for ``"per_matrix"``, or the broadcast shape for ``"none"``.

    References:
        Fevotte and Idier 2011, eq. 2.
    """
    beta = check_beta(beta)
    if reduction not in REDUCTIONS:
        raise ConfigError(f"reduction must be one of {list(REDUCTIONS)}, got {reduction!r}")
    Y = Y.clamp_min(eps)
    if beta == 2:
        d = 0.5 * (X - Y) ** 2
    elif beta == 1:
        d = torch.xlogy(X, X) - torch.xlogy(X, Y) - X + Y
    elif beta == 0:
        ratio = X.clamp_min(eps) / Y
        d = ratio - torch.log(ratio) - 1
    else:
        Xb = X.clamp_min(eps) if beta < 1 else X
        d = (Xb**beta + (beta - 1) * Y**beta - beta * Xb * Y ** (beta - 1)) / (beta * (beta - 1))
    if mask is not None:
        d = torch.where(mask != 0, d * mask, torch.zeros((), dtype=d.dtype, device=d.device))
    if reduction == "sum":
        return d.sum()
    if reduction == "mean":
        if mask is None:
            return d.mean()
        return d.sum() / torch.broadcast_to(mask, d.shape).sum().clamp_min(1)
    if reduction == "per_matrix":
        if d.dim() < 2:
            raise ConfigError(f"reduction='per_matrix' needs (..., m, n) inputs, got shape {tuple(d.shape)}")
        return d.sum(dim=(-2, -1))
    return d
