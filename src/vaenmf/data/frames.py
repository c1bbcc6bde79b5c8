"""Picking spectrogram frames for a dictionary: dropping near-silent frames, drawing a random subset."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["drop_silent_frames", "select_frames"]


def drop_silent_frames(mag: torch.Tensor, threshold_db: float | None = 40.0) -> torch.Tensor:
    """Remove frames whose energy is more than ``threshold_db`` below the loudest frame of the utterance.

    Why: pauses and leading/trailing silence carry no speech structure; in a dictionary they waste atoms on
    near-zero columns and are degenerate for scale-invariant costs (Itakura-Saito). The threshold is relative
    to the utterance, so it does not depend on the recording level.

    Args:
        mag: Magnitude spectrogram of one utterance.
        threshold_db: Drop frames below ``max frame energy - threshold_db``; None or <= 0 keeps all frames.

    Shape:
        - mag: ``(257, T)``; output ``(257, T')`` with ``T' <= T``.
    """
    if threshold_db is None or threshold_db <= 0:
        return mag
    energy = mag.pow(2).sum(dim=0)
    keep = energy >= energy.max() * 10.0 ** (-float(threshold_db) / 10.0)
    return mag[:, keep]


def select_frames(X: torch.Tensor, n: int, rng: np.random.Generator) -> torch.Tensor:
    """Pick ``min(n, X.shape[1])`` columns of ``X`` uniformly at random without replacement, in time order.

    Shape:
        - X: ``(m, N)``; output ``(m, min(n, N))``.
    """
    total = X.shape[1]
    if n >= total:
        return X
    idx = np.sort(rng.choice(total, size=int(n), replace=False))
    return X[:, torch.from_numpy(idx)]
