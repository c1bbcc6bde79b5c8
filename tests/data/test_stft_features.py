"""The shared STFT front end: shapes, window, perfect reconstruction; context stacking of frames."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from vaenmf.data.features import (
    HOP_LENGTH,
    N_FFT,
    N_FREQ,
    hamming_window,
    istft,
    magnitude,
    magnitude_phase,
    n_frames,
    resynthesise,
    stack_context,
    stft,
)
from vaenmf.data.synthetic import make_noise, make_speakers, synth_utterance
from vaenmf.errors import DataError


def test_constants():
    assert (N_FFT, HOP_LENGTH, N_FREQ) == (512, 128, 257)


def test_window_is_periodic_hamming_and_cached():
    w = hamming_window()
    np.testing.assert_allclose(w.numpy(), scipy.signal.get_window("hamming", 512, fftbins=True), atol=1e-6)
    assert hamming_window() is w
    assert hamming_window(dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize("length", [16000, 12345, 600])
def test_round_trip_random(length):
    x = torch.rand(3, length, generator=torch.Generator().manual_seed(length)) * 2 - 1
    spec = stft(x)
    assert spec.shape == (3, 257, 1 + length // 128) and spec.is_complex()
    assert n_frames(length) == spec.shape[-1]
    y = istft(spec, length)
    assert y.shape == x.shape
    assert float((y - x).abs().max()) < 1e-5


def test_round_trip_demo_signals():
    speech = torch.from_numpy(synth_utterance(make_speakers(1, 0)[0], np.random.default_rng(0)))
    for x in (speech, make_noise("factory", 1.0, seed=0)):
        mag, phase = magnitude_phase(x)
        assert mag.shape == (257, 1 + x.numel() // 128)
        y = resynthesise(mag, phase, x.numel())
        assert float((y - x).abs().max()) < 1e-5


def test_float64_and_magnitude():
    x = torch.randn(4000, dtype=torch.float64)
    assert float((istft(stft(x), 4000) - x).abs().max()) < 1e-12
    np.testing.assert_allclose(magnitude(x).numpy(), stft(x).abs().numpy())


def test_too_short_and_wrong_type():
    with pytest.raises(DataError, match="too short"):
        stft(torch.zeros(100))
    with pytest.raises(DataError, match="floating"):
        stft(torch.zeros(1000, dtype=torch.int16))
    with pytest.raises(DataError, match="257"):
        istft(torch.zeros(3, 100, dtype=torch.complex64), 1000)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_round_trip_cuda():
    x = torch.rand(2, 8000, device="cuda") * 2 - 1
    y = istft(stft(x), 8000)
    assert y.device.type == "cuda"
    assert float((y - x).abs().max()) < 1e-5


# ------------------------------------------------------------------------------------ context stacking
def _frames(n: int, m: int) -> torch.Tensor:
    # Frame t has every entry equal to t (+ a per-bin offset), so positions are easy to read back.
    return torch.arange(n, dtype=torch.float32).unsqueeze(1) + torch.arange(m) / 100.0


def test_stack_context_shapes_and_order() -> None:
    x = _frames(5, 3)
    out = stack_context(x, 1)
    assert out.shape == (5, 9)
    torch.testing.assert_close(out[2], torch.cat([x[1], x[2], x[3]]))
    # Edge replication: before the first frame is the first frame, after the last is the last.
    torch.testing.assert_close(out[0], torch.cat([x[0], x[0], x[1]]))
    torch.testing.assert_close(out[4], torch.cat([x[3], x[4], x[4]]))
    out2 = stack_context(x, 2)
    assert out2.shape == (5, 15)
    torch.testing.assert_close(out2[0], torch.cat([x[0], x[0], x[0], x[1], x[2]]))
    torch.testing.assert_close(out2[4], torch.cat([x[2], x[3], x[4], x[4], x[4]]))


def test_stack_context_zero_context_single_frame_and_numpy() -> None:
    x = _frames(4, 2)
    torch.testing.assert_close(stack_context(x, 0), x)
    one = stack_context(x[:1], 3)
    torch.testing.assert_close(one, x[:1].repeat(1, 7))
    out = stack_context(np.ones((3, 2), dtype=np.float64), 1)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 6) and out.dtype == torch.float64


@pytest.mark.parametrize(
    ("frames", "context", "match"),
    [
        (torch.ones(3), 1, "nonempty"),
        (torch.ones(0, 4), 1, "nonempty"),
        (torch.ones(3, 4), -1, "context"),
        (torch.ones(3, 4), 1.5, "context"),
    ],
)
def test_stack_context_bad_input(frames, context, match) -> None:
    with pytest.raises(DataError, match=match):
        stack_context(frames, context)
