"""Muscle-synergy metrics: the variance accounted for (VAF), its summary over movements, and synergy recovery.

Plain functions of numpy arrays (torch tensors are accepted and moved to the CPU); nothing here knows about
Lightning, Hydra or files.

References:
    Torres-Oviedo, Macpherson, Ting. "Muscle synergy organization is robust across a variety of postural
    perturbations". J Neurophysiol 2006 (uncentred VAF).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vaenmf.errors import DataError

__all__ = ["matched_cosine", "summarise_vaf", "vaf"]


def vaf(X: Any, X_hat: Any, axis: int | None = None) -> float | np.ndarray:
    """Uncentred variance accounted for, ``1 - sum (x - x_hat)^2 / sum x^2``.

    Used for muscle synergies: with EMG ``X`` of shape ``(channels, samples)``, ``axis=1`` gives the VAF of each
    muscle (channel) and ``axis=None`` the overall VAF. Uncentred (no mean removal), as is usual for synergy
    analysis of rectified EMG. A row whose ``sum x^2`` is zero has undefined VAF and gives NaN.

    Args:
        X: Data.
        X_hat: Reconstruction, same shape.
        axis: Axis (or axes) to sum over; ``None`` sums over everything.

    Returns:
        A float when ``axis`` is None, else an array with ``axis`` removed (e.g. ``(channels,)`` for ``axis=1``).

    Raises:
        DataError: If the shapes differ or the inputs contain NaN/inf.

    Shape:
        - X, X_hat: ``(channels, samples)`` (any shape works).
        - output: scalar (``axis=None``) or ``(channels,)`` (``axis=1``).

    References:
        Torres-Oviedo, Macpherson, Ting. "Muscle synergy organization is robust across a variety of postural
        perturbations". J Neurophysiol 2006 (uncentred VAF).
    """

    def as_array(a: Any, name: str) -> np.ndarray:
        if hasattr(a, "detach"):
            a = a.detach().cpu().numpy()
        arr = np.asarray(a, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{name} contains NaN or infinite values; expected finite data")
        return arr

    x = as_array(X, "X")
    x_hat = as_array(X_hat, "X_hat")
    if x.shape != x_hat.shape:
        raise DataError(f"X and X_hat must have the same shape, got {x.shape} and {x_hat.shape}")
    num = np.sum((x - x_hat) ** 2, axis=axis)
    den = np.sum(x**2, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1.0 - num / den
    out = np.where(den > 0, out, np.nan)
    return float(out) if axis is None else np.asarray(out)


def matched_cosine(W: Any, W_true: Any) -> float:
    """Mean cosine similarity of dictionary atoms after the best one-to-one pairing (Hungarian method).

    The usual score of dictionary (synergy) recovery: invariant to the atoms' order and scale; 1 means every
    fitted atom is parallel to a true one. With different ranks the smaller set is paired.

    Shape:
        W, W_true: ``(m, r)`` and ``(m, r')``, numpy arrays or tensors.
    """
    from scipy.optimize import linear_sum_assignment

    def unit(a: Any) -> np.ndarray:
        if hasattr(a, "detach"):
            a = a.detach().cpu().numpy()
        a = np.asarray(a, dtype=np.float64)
        return a / np.maximum(np.linalg.norm(a, axis=0, keepdims=True), 1e-12)

    similarity = unit(W).T @ unit(W_true)
    rows, cols = linear_sum_assignment(-similarity)
    return float(similarity[rows, cols].mean())


def summarise_vaf(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean (and spread) of the VAF over subjects and movements, per ``split/reconstruction``.

    Args:
        results: One entry per (subject, movement), as the synergy task writes them to ``metrics.json``'s
            ``rows``: ``{"vaf": {"<split>/<reconstruction>": {"overall": float, "per_muscle": [float, ...]}},
            "synergy_recovery": float}`` (the recovery only where the true synergies are known).

    Returns:
        Per ``split/reconstruction``: ``vaf_mean``, ``vaf_std`` (population), ``vaf_min``, ``per_muscle_mean``
        and ``n_movements``, NaN-aware; plus ``synergy_recovery`` (``mean``, ``min``) when any entry has one.
    """
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        for key, entry in result["vaf"].items():
            by_key[key].append(entry)
    summary: dict[str, Any] = {}
    for key, entries in sorted(by_key.items()):
        overall = np.array([e["overall"] for e in entries], dtype=np.float64)
        per_muscle = np.array([e["per_muscle"] for e in entries], dtype=np.float64)
        summary[key] = {
            "vaf_mean": float(np.nanmean(overall)),
            "vaf_std": float(np.nanstd(overall)),
            "vaf_min": float(np.nanmin(overall)),
            "per_muscle_mean": [float(v) for v in np.nanmean(per_muscle, axis=0)],
            "n_movements": len(entries),
        }
    recovery = [r["synergy_recovery"] for r in results if "synergy_recovery" in r]
    if recovery:
        summary["synergy_recovery"] = {"mean": float(np.mean(recovery)), "min": float(np.min(recovery))}
    return summary
