"""Input checks shared by every dictionary-learning method."""

from __future__ import annotations

import numpy as np
import torch

from vaenmf.errors import DataError


def as_nonnegative_tensor(
    X: torch.Tensor | np.ndarray,
    name: str = "X",
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Return ``X`` as a floating tensor after checking it is finite and nonnegative.

    Args:
        X: Data matrix or batch, any shape.
        name: Name used in the error message.
        dtype: Target floating dtype (default: keep a floating dtype, else float32).
        device: Target device.

    Raises:
        DataError: If ``X`` contains NaN/inf or negative values, or is empty.
    """
    t = torch.as_tensor(X)
    if dtype is None:
        dtype = t.dtype if t.is_floating_point() else torch.float32
    t = t.to(dtype=dtype, device=device)
    if t.numel() == 0:
        raise DataError(f"{name} is empty (shape {tuple(t.shape)}); expected a nonempty nonnegative matrix")
    if not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise DataError(f"{name} contains {n_bad} NaN or infinite values; expected finite nonnegative data")
    min_value = float(t.min())
    if min_value < 0:
        n_neg = int((t < 0).sum())
        raise DataError(
            f"{name} contains {n_neg} negative values (min {min_value:.3g}); expected nonnegative data "
            "(e.g. a magnitude spectrogram or rectified EMG)"
        )
    return t


def check_rank(rank: int, shape: tuple[int, ...], name: str = "X") -> int:
    """Check that a factorisation rank fits a ``(m, n)`` data matrix.

    Raises:
        DataError: If ``rank`` is not a positive integer no larger than ``min(m, n)``.
    """
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise DataError(f"rank must be a positive integer, got {rank!r}")
    if len(shape) != 2:
        raise DataError(f"{name} must be a 2-D (m, n) matrix, got shape {tuple(shape)}")
    limit = min(shape)
    if rank > limit:
        raise DataError(
            f"rank {rank} is larger than min(m, n) = {limit} for {name} of shape {tuple(shape)}; "
            f"choose rank <= {limit}"
        )
    return int(rank)
