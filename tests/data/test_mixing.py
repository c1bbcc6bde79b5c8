"""Mixing at a prescribed SNR."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaenmf.data.mixing import mix_at_snr, random_noise_segment, snr_db
from vaenmf.errors import DataError


@pytest.mark.parametrize("target", [-5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 3.7])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hits_target_snr(target, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8000, 40000))
    # Speech-like level variation and a noise with a very different level: the gain must do the work.
    speech = torch.from_numpy(
        (rng.standard_normal(n) * np.abs(np.sin(np.arange(n) / 900.0)) * 0.1).astype(np.float32)
    )
    noise = torch.from_numpy((rng.standard_normal(n + 5000) * 3.0).astype(np.float32))
    offset = int(rng.integers(0, 5000))
    mixture, scaled = mix_at_snr(speech, noise, target, offset=offset)
    assert mixture.dtype == torch.float32 and scaled.shape == speech.shape
    assert abs(snr_db(speech, scaled) - target) < 0.01
    assert float((mixture - speech - scaled).abs().max()) < 1e-5
    # The scaled noise is the requested segment times one gain.
    ratio = scaled.double() / noise[offset : offset + n].double()
    assert float(ratio.std() / ratio.mean()) < 1e-5


def test_snr_db_definition():
    s = torch.ones(100)
    assert snr_db(s, 0.1 * s) == pytest.approx(20.0)
    assert snr_db(s, torch.zeros(100)) == float("inf")
    with pytest.raises(DataError, match="same length"):
        snr_db(s, torch.ones(50))


def test_noise_too_short():
    with pytest.raises(DataError, match="does not fit"):
        mix_at_snr(torch.ones(1000), torch.ones(1500), 0.0, offset=600)


def test_silent_inputs():
    with pytest.raises(DataError, match="speech is silent"):
        mix_at_snr(torch.zeros(100), torch.ones(100), 0.0)
    noise = torch.ones(300)
    noise[100:200] = 0
    with pytest.raises(DataError, match="silent"):
        mix_at_snr(torch.ones(100), noise, 0.0, offset=100)


def test_nan_segment_and_bad_snr():
    noise = torch.ones(300)
    noise[150] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        mix_at_snr(torch.ones(100), noise, 0.0, offset=100)
    mix_at_snr(torch.ones(100), noise, 0.0, offset=0)  # NaN outside the segment does not matter
    with pytest.raises(DataError, match="finite"):
        mix_at_snr(torch.ones(100), torch.ones(100), float("inf"))


def test_random_noise_segment():
    offsets = [random_noise_segment(1000, 300, np.random.default_rng(i)) for i in range(200)]
    assert min(offsets) >= 0 and max(offsets) <= 700
    assert random_noise_segment(1000, 300, np.random.default_rng(5)) == random_noise_segment(
        1000, 300, np.random.default_rng(5)
    )
    t = random_noise_segment(1000, 300, torch.Generator().manual_seed(0))
    assert 0 <= t <= 700
    assert random_noise_segment(300, 300, np.random.default_rng(0)) == 0
    with pytest.raises(DataError, match="shorter"):
        random_noise_segment(100, 300)
