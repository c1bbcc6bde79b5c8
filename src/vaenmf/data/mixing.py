"""Mixing speech and noise at a prescribed SNR.

The SNR is defined per utterance over the whole utterance (DESIGN.md section 4):
``10 log10(sum s^2 / sum n^2)`` with ``n`` the noise segment actually added. Energies and the gain are
computed in float64 so that the float32 result hits the target to well under 0.01 dB.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vaenmf.errors import DataError
from vaenmf.validation import check_number

__all__ = ["snr_db", "mix_at_snr", "random_noise_segment"]


def _as_1d(x: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    """A 1-D numpy view/copy of a waveform (CPU). Mixing is data preparation, done in numpy: for vectors of a
    few 10^4 samples torch's intra-op thread pool costs more than it gains (badly so on a loaded machine)."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 1:
        raise DataError(f"{name} must be a 1-D waveform, got shape {tuple(a.shape)}")
    if a.size == 0:
        raise DataError(f"{name} is empty; expected a nonempty waveform")
    if a.dtype.kind not in "iuf":
        raise DataError(f"{name} must be a real-valued waveform, got dtype {a.dtype}")
    return a


def _energy(a: np.ndarray, name: str) -> float:
    a64 = a.astype(np.float64, copy=False)
    e = float(np.square(a64).sum())  # not np.dot: a threaded BLAS call is slower for vectors this size
    if not math.isfinite(e):
        raise DataError(f"{name} contains NaN or infinite samples")
    return e


def snr_db(signal: torch.Tensor | np.ndarray, noise: torch.Tensor | np.ndarray) -> float:
    """Signal-to-noise ratio ``10 log10(sum s^2 / sum n^2)`` in dB, computed in float64.

    Returns ``inf`` for silent noise and ``-inf`` for a silent signal.

    Shape:
        - signal, noise: ``(time,)``, same length.
    """
    s = _as_1d(signal, "signal")
    n = _as_1d(noise, "noise")
    if s.shape != n.shape:
        raise DataError(f"signal ({s.size} samples) and noise ({n.size} samples) must have the same length")
    es = _energy(s, "signal")
    en = _energy(n, "noise")
    if en == 0.0:
        return math.inf
    if es == 0.0:
        return -math.inf
    return 10.0 * math.log10(es / en)


def mix_at_snr(
    speech: torch.Tensor, noise: torch.Tensor, snr_db: float, offset: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Add a noise segment to speech, scaled so that the utterance-level SNR is ``snr_db``.

    The segment ``noise[offset : offset + len(speech)]`` is scaled by
    ``g = sqrt(sum s^2 / (sum n^2 * 10^(snr/10)))``; the mixture is ``speech + g * segment``. No clipping or
    renormalisation happens here (that would change the SNR or the mixture = speech + noise identity);
    callers that need ``|mixture| <= 1`` scale all three signals together.

    Args:
        speech: Clean speech.
        noise: Noise recording, at least ``offset + len(speech)`` samples long.
        snr_db: Target SNR in dB.
        offset: Start of the noise segment, in samples.

    Returns:
        ``(mixture, scaled_noise)``: float32 (float64 if ``speech`` is float64), on ``speech``'s device.

    Shape:
        - speech: ``(time,)``; noise: ``(time_noise,)`` with ``time_noise >= offset + time``.
        - mixture, scaled_noise: ``(time,)``.

    Raises:
        DataError: If the noise is too short for the segment, the speech or the noise segment is silent or
            not finite, or ``snr_db`` is not finite.
    """
    s = _as_1d(speech, "speech")
    n = _as_1d(noise, "noise")
    check_number(snr_db, "snr_db", error=DataError, hint="dB")
    offset = int(offset)
    length = s.size
    if offset < 0 or offset + length > n.size:
        raise DataError(
            f"noise segment [{offset}, {offset + length}) does not fit in the noise signal of {n.size} "
            f"samples; need a noise at least {offset + length} samples long"
        )
    seg = n[offset : offset + length]
    # Only the segment is checked for NaN (via its energy): the noise recording can be minutes long.
    es = _energy(s, "speech")
    en = _energy(seg, f"noise segment [{offset}, {offset + length})")
    if es == 0.0:
        raise DataError("speech is silent (zero energy); cannot mix at an SNR")
    if en == 0.0:
        raise DataError(
            f"noise segment [{offset}, {offset + length}) is silent (zero energy); cannot mix at an SNR"
        )
    gain = math.sqrt(es / (en * 10.0 ** (float(snr_db) / 10.0)))
    scaled64 = seg.astype(np.float64) * gain
    mixture64 = s.astype(np.float64) + scaled64
    out_dtype = np.float64 if s.dtype == np.float64 else np.float32
    device = speech.device if isinstance(speech, torch.Tensor) else torch.device("cpu")
    return (
        torch.from_numpy(mixture64.astype(out_dtype)).to(device),
        torch.from_numpy(scaled64.astype(out_dtype)).to(device),
    )


def random_noise_segment(
    noise_length: int, length: int, generator: np.random.Generator | torch.Generator | None = None
) -> int:
    """Draw a uniformly random offset for a segment of ``length`` samples in a noise of ``noise_length``.

    Args:
        noise_length: Number of samples in the noise signal (or the part of it that may be used).
        length: Segment length in samples.
        generator: numpy ``Generator`` or torch ``Generator`` (for reproducibility); fresh randomness if None.

    Returns:
        An offset in ``[0, noise_length - length]``.

    Raises:
        DataError: If the noise is shorter than the segment.
    """
    noise_length, length = int(noise_length), int(length)
    if length <= 0:
        raise DataError(f"segment length must be positive, got {length}")
    if noise_length < length:
        raise DataError(
            f"noise of {noise_length} samples is shorter than the {length}-sample segment requested; "
            "use a longer noise recording (or a larger noise part of the split)"
        )
    high = noise_length - length  # inclusive
    if isinstance(generator, torch.Generator):
        return int(torch.randint(0, high + 1, (1,), generator=generator).item())
    rng = generator if generator is not None else np.random.default_rng()
    return int(rng.integers(0, high + 1))
