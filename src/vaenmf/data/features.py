"""The speech front end shared by every method (DESIGN.md section 2).

16 kHz, 512-point periodic Hamming window, hop 128 (75% overlap), ``center=True`` with reflect padding,
linear magnitude with 257 bins; resynthesis uses the noisy phase and ``istft(length=len(x))``. Using one
front end everywhere keeps the comparison between methods fair: they only differ in the magnitude they
estimate.

Layout: a spectrogram is ``(..., 257, T)`` (frequency x frames, the paper's ``X`` of shape ``(m, n)``).
Every function is batched over leading dimensions and runs on whatever device/dtype its input has.
:func:`stack_context` builds the inputs of the DNN separators from frames in time order, ``(T, 257)``.
"""

from __future__ import annotations

import numpy as np
import torch

from vaenmf.errors import DataError
from vaenmf.validation import check_int

__all__ = [
    "SAMPLE_RATE",
    "N_FFT",
    "HOP_LENGTH",
    "N_FREQ",
    "hamming_window",
    "n_frames",
    "stft",
    "istft",
    "magnitude",
    "magnitude_phase",
    "resynthesise",
    "stack_context",
]

SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 128
N_FREQ = N_FFT // 2 + 1  # 257

# One window per (device, dtype): building it is cheap, but re-allocating it on the GPU for every call of a
# per-utterance loop is pointless.
_WINDOWS: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def hamming_window(
    device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The periodic Hamming window of length ``N_FFT`` on ``device``/``dtype`` (cached).

    Shape:
        - output: ``(N_FFT,)``.
    """
    key = (torch.device(device) if device is not None else torch.device("cpu"), dtype)
    window = _WINDOWS.get(key)
    if window is None:
        window = torch.hamming_window(N_FFT, periodic=True, dtype=dtype, device=key[0])
        _WINDOWS[key] = window
    return window


def n_frames(length: int) -> int:
    """Number of STFT frames for a signal of ``length`` samples (``center=True``): ``1 + length // 128``."""
    return 1 + int(length) // HOP_LENGTH


def stft(wave: torch.Tensor) -> torch.Tensor:
    """Complex STFT with the project's front-end parameters.

    Args:
        wave: Real waveform(s), float32 or float64, at least ``N_FFT // 2 + 1`` samples long (reflect padding
            needs more samples than the pad width).

    Returns:
        Complex spectrogram (complex64 for float32 input).

    Shape:
        - wave: ``(..., time)``.
        - output: ``(..., 257, 1 + time // 128)``.

    Raises:
        DataError: If ``wave`` is not a real floating tensor or is too short.
    """
    if not isinstance(wave, torch.Tensor) or not wave.is_floating_point():
        kind = wave.dtype if isinstance(wave, torch.Tensor) else type(wave).__name__
        raise DataError(f"stft expects a real floating torch tensor, got {kind}")
    if wave.ndim == 0:
        raise DataError("stft expects a waveform of shape (..., time), got a scalar")
    length = wave.shape[-1]
    if length <= N_FFT // 2:
        raise DataError(f"waveform too short for the STFT: {length} samples, need at least {N_FFT // 2 + 1}")
    lead = wave.shape[:-1]
    flat = wave.reshape(-1, length)
    spec = torch.stft(
        flat,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=N_FFT,
        window=hamming_window(wave.device, wave.dtype),
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    return spec.reshape(*lead, N_FREQ, spec.shape[-1])


def istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    """Inverse of :func:`stft` (weighted overlap-add), trimmed/padded to ``length`` samples.

    Args:
        spec: Complex spectrogram as returned by :func:`stft`.
        length: Number of output samples (the original signal length).

    Shape:
        - spec: ``(..., 257, T)``.
        - output: ``(..., length)``.
    """
    if not isinstance(spec, torch.Tensor) or not spec.is_complex():
        raise DataError("istft expects a complex spectrogram tensor of shape (..., 257, T)")
    if spec.ndim < 2 or spec.shape[-2] != N_FREQ:
        raise DataError(f"istft expects shape (..., {N_FREQ}, T), got {tuple(spec.shape)}")
    lead = spec.shape[:-2]
    flat = spec.reshape(-1, N_FREQ, spec.shape[-1])
    wave = torch.istft(
        flat,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=N_FFT,
        window=hamming_window(spec.device, spec.real.dtype),
        center=True,
        normalized=False,
        onesided=True,
        length=int(length),
    )
    return wave.reshape(*lead, int(length))


def magnitude(wave: torch.Tensor) -> torch.Tensor:
    """Linear STFT magnitude.

    Shape:
        - wave: ``(..., time)``.
        - output: ``(..., 257, 1 + time // 128)``, nonnegative.
    """
    return stft(wave).abs()


def magnitude_phase(wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear STFT magnitude and phase (radians) of a waveform.

    Shape:
        - wave: ``(..., time)``.
        - mag, phase: ``(..., 257, 1 + time // 128)``.
    """
    spec = stft(wave)
    return spec.abs(), torch.angle(spec)


def resynthesise(mag: torch.Tensor, phase: torch.Tensor, length: int) -> torch.Tensor:
    """Waveform from a magnitude estimate and a phase (the noisy mixture's, by convention).

    Shape:
        - mag, phase: ``(..., 257, T)``, same shape (or broadcastable).
        - output: ``(..., length)``.
    """
    if mag.shape != phase.shape:
        raise DataError(
            f"magnitude {tuple(mag.shape)} and phase {tuple(phase.shape)} must have the same shape"
        )
    return istft(torch.polar(mag, phase.to(mag.dtype)), length)


def stack_context(frames: torch.Tensor | np.ndarray, context: int) -> torch.Tensor:
    """Concatenate each frame with ``context`` frames on each side, replicating the edge frames.

    Row ``t`` of the output is ``[x_{t-c}, ..., x_t, ..., x_{t+c}]`` (oldest first), where indices before the
    first or after the last frame are clamped to them (edge replication), so the output has one row per input
    frame.

    Args:
        frames: Frames of one utterance, in time order.
        context: Number of frames ``c >= 0`` on each side.

    Returns:
        The stacked frames (a tensor; numpy input is converted).

    Shape:
        - frames: ``(n, m)``; output: ``(n, m * (2 c + 1))``.

    Raises:
        DataError: If ``frames`` is not a nonempty 2-D array or ``context`` is not a nonnegative integer.
    """
    x = torch.as_tensor(frames)
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataError(f"frames must be a nonempty (n, m) matrix, got shape {tuple(x.shape)}")
    check_int(context, "context", minimum=0, error=DataError)
    n = x.shape[0]
    offsets = torch.arange(-int(context), int(context) + 1, device=x.device)
    index = (torch.arange(n, device=x.device).unsqueeze(1) + offsets).clamp_(0, n - 1)  # (n, 2c+1)
    return x[index].reshape(n, -1)
