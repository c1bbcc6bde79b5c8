"""Tests of vaenmf.metrics.speech on short synthetic speech-like signals (16 kHz, 2 s)."""

from __future__ import annotations

import math
import warnings

import mir_eval
import numpy as np
import pytest
import torch

from vaenmf.errors import DataError
from vaenmf.metrics import (
    SCORE_KEYS,
    MetricWarning,
    bss_eval_speech,
    pesq_mos_lqo_to_raw,
    pesq_raw_to_mos_lqo,
    pesq_scores,
    score_utterance,
    stoi_score,
)

SR = 16000


def _speech_like(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Harmonic tone bursts with a moving pitch, syllable-rate envelope and amplitude modulation, float64."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120.0 + 25.0 * np.sin(2 * np.pi * 0.7 * t) + 5.0 * rng.standard_normal()
    phase = 2 * np.pi * np.cumsum(f0) / SR
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = np.clip(np.sin(2 * np.pi * 2.2 * t), 0, None) ** 2 * (0.6 + 0.4 * np.sin(2 * np.pi * 5 * t))
    s = 0.3 * harmonics * envelope / np.max(np.abs(harmonics * envelope))
    # A weak broadband floor (breath, room noise) as in real recordings. Without it the signal is strictly
    # band-limited, the 512-lag Gram matrix of BSS Eval is near singular and SDR becomes sensitive to float32
    # rounding (about 1 dB here).
    return s + 1e-3 * rng.standard_normal(s.shape[0])


@pytest.fixture(scope="module")
def signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    s = _speech_like()
    n = 0.05 * rng.standard_normal(s.shape[0])
    return {"s": s, "n": n, "y": s + n}


def _direct(s, n, est, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mir_eval.separation.bss_eval_sources(
            np.stack([s, n]), np.stack([est, y - est]), compute_permutation=False
        )


# --------------------------------------------------------------------------------------------- BSS Eval
def test_bss_eval_matches_direct_mir_eval(signals):
    s, n, y = signals["s"], signals["n"], signals["y"]
    est = s + 0.2 * n
    ours = bss_eval_speech(s, n, est, y)
    sdr, sir, sar, _ = _direct(s, n, est, y)
    assert ours == {
        "sdr": pytest.approx(sdr[0], abs=1e-9),
        "sir": pytest.approx(sir[0], abs=1e-9),
        "sar": pytest.approx(sar[0], abs=1e-9),
    }


def test_bss_eval_row0_is_speech(signals):
    s, n, y = signals["s"], signals["n"], signals["y"]
    clean = bss_eval_speech(s, n, s + 0.05 * n, y)
    noisy = bss_eval_speech(s, n, s + 0.8 * n, y)
    assert noisy["sir"] < clean["sir"] - 10
    # An estimate that is mostly noise: a permutation search would swap the rows and report a good SIR;
    # the speech row must report a negative one.
    mostly_noise = bss_eval_speech(s, n, 0.05 * s + n, y)
    assert mostly_noise["sir"] < 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, sir_perm, _, perm = mir_eval.separation.bss_eval_sources(
            np.stack([s, n]), np.stack([0.05 * s + n, y - (0.05 * s + n)])
        )
    assert list(perm) == [1, 0]
    assert mostly_noise["sir"] < sir_perm[0]


def test_bss_eval_mixture_as_estimate(signals):
    s, n, y = signals["s"], signals["n"], signals["y"]
    ours = bss_eval_speech(s, n, y, y)  # noise estimate y - y is silent: handled, row 0 unchanged
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(
            np.stack([s, n]), np.stack([y, 0.5 * n + 0.1 * s]), compute_permutation=False
        )
    assert ours["sdr"] == pytest.approx(sdr[0], abs=1e-9)
    assert ours["sir"] == pytest.approx(sir[0], abs=1e-9)
    assert ours["sar"] == pytest.approx(sar[0], abs=1e-9)


def test_bss_eval_errors_and_torch(signals):
    s, n, y = signals["s"], signals["n"], signals["y"]
    with pytest.raises(DataError, match="estimated_speech is all zeros"):
        bss_eval_speech(s, n, np.zeros_like(s), y)
    with pytest.raises(DataError, match="reference_noise is all zeros"):
        bss_eval_speech(s, np.zeros_like(n), s, y)
    with pytest.raises(DataError, match="same number of samples"):
        bss_eval_speech(s, n, s[:-10], y)
    bad = s.copy()
    bad[3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        bss_eval_speech(s, n, bad, y)
    est = s + 0.2 * n
    from_torch = bss_eval_speech(*(torch.from_numpy(a).float()[None] for a in (s, n, est, y)))
    assert from_torch["sdr"] == pytest.approx(bss_eval_speech(s, n, est, y)["sdr"], abs=1e-3)


# ------------------------------------------------------------------------------------------------- PESQ
@pytest.mark.parametrize("raw", [-0.5, 0.0, 1.0, 1.9, 2.5, 3.2, 4.0, 4.5])
def test_p862_1_round_trip(raw):
    lqo = pesq_raw_to_mos_lqo(raw)
    assert 0.999 < lqo < 4.999
    assert pesq_mos_lqo_to_raw(lqo) == pytest.approx(raw, abs=1e-9)


def test_p862_1_vectorised_and_monotonic():
    raw = np.linspace(-0.5, 4.5, 51)
    lqo = pesq_raw_to_mos_lqo(raw)
    assert np.all(np.diff(lqo) > 0)
    np.testing.assert_allclose(pesq_mos_lqo_to_raw(lqo), raw, atol=1e-9)
    assert math.isnan(pesq_mos_lqo_to_raw(math.nan))


def test_pesq_identity_and_noise(signals):
    s = signals["s"]
    rng = np.random.default_rng(3)
    same = pesq_scores(s, s, SR)
    # Identical signals: raw P.862 MOS is exactly 4.5 (no disturbance), i.e. the inversion is the right one.
    assert same["pesq_nb"] == pytest.approx(4.5, abs=0.01)
    assert same["pesq_wb"] > 4.0
    scores = [pesq_scores(s, s + level * rng.standard_normal(s.shape[0]), SR) for level in (1e-4, 1e-3, 1e-2)]
    nb = [sc["pesq_nb"] for sc in scores]
    wb = [sc["pesq_wb"] for sc in scores]
    assert same["pesq_nb"] > nb[0] > nb[1] > nb[2]
    assert same["pesq_wb"] > wb[0] > wb[1] > wb[2]


def test_pesq_raw_consistent_with_package(signals):
    import pesq

    s = signals["s"]
    deg = s + 1e-3 * np.random.default_rng(4).standard_normal(s.shape[0])
    lqo = pesq.pesq(SR, s, deg, "nb")
    assert pesq_scores(s, deg, SR)["pesq_nb"] == pytest.approx(pesq_mos_lqo_to_raw(lqo), abs=1e-9)
    assert pesq_raw_to_mos_lqo(pesq_scores(s, deg, SR)["pesq_nb"]) == pytest.approx(lqo, abs=1e-6)


def test_pesq_failure_gives_nan_with_warning(signals):
    short = signals["s"][:1000]  # < 1/4 s: BufferTooShortError
    with pytest.warns(MetricWarning, match="PESQ"):
        out = pesq_scores(short, short, SR)
    assert math.isnan(out["pesq_nb"]) and math.isnan(out["pesq_wb"])
    with pytest.raises(DataError, match="8000 or 16000"):
        pesq_scores(signals["s"], signals["s"], 22050)


# ------------------------------------------------------------------------------------------------- STOI
def test_stoi(signals):
    s, y = signals["s"], signals["y"]
    same = stoi_score(s, s, SR)
    noisy = stoi_score(s, s + 4 * signals["n"], SR)
    assert same == pytest.approx(1.0, abs=1e-6)
    assert 0.0 <= noisy <= 1.0
    assert noisy < same
    assert 0.0 <= stoi_score(s, y, SR) <= 1.0


# -------------------------------------------------------------------------------------- score_utterance
def test_score_utterance_keys_and_baseline(signals):
    s, n, y = signals["s"], signals["n"], signals["y"]
    out = score_utterance(s, n, s + 0.1 * n, y, SR)
    expected = set(SCORE_KEYS) | {f"{k}_input" for k in SCORE_KEYS}
    assert set(out) == expected
    assert all(isinstance(v, float) for v in out.values())
    assert out["sdr"] > out["sdr_input"]
    assert out["pesq_nb"] > out["pesq_nb_input"]


def test_score_utterance_uses_the_same_numbers_as_the_mir_eval_wrapper():
    rng = np.random.default_rng(2)
    t = np.arange(16000) / 16000
    s = 0.5 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(
        len(t)
    )
    n = 0.2 * rng.standard_normal(len(t))
    est = 0.9 * s + 0.1 * n
    scores = score_utterance(s, n, est, s + n)
    reference = bss_eval_speech(s, n, est, s + n)
    for key in ("sdr", "sir", "sar"):
        assert scores[key] == pytest.approx(reference[key], abs=0.01)
    assert scores["sdr_input"] == pytest.approx(bss_eval_speech(s, n, s + n, s + n)["sdr"], abs=0.01)


# ------------------------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_speech_and_noise(shared_data):
    """A TIMIT utterance in NOISEX-92 babble at 0 dB: plausible scores, float32 agrees with float64."""
    sf = pytest.importorskip("soundfile")
    speech, sr = sf.read(shared_data / "timit_sample" / "dr3-falk0" / "sx186.wav", dtype="float64")
    noise, sr_noise = sf.read(
        shared_data / "noisex92" / "tanuka92_16k" / "speech_babble.wav", dtype="float64"
    )
    assert sr == sr_noise == SR
    noise = noise[: speech.shape[0]]
    noise *= np.sqrt(np.sum(speech**2) / np.sum(noise**2))  # 0 dB
    mixture = speech + noise
    estimate = speech + 0.3 * noise
    out = score_utterance(speech, noise, estimate, mixture, SR)
    assert out["sdr_input"] == pytest.approx(0.0, abs=1.0)
    assert out["sdr"] == pytest.approx(20 * np.log10(1 / 0.3), abs=1.5)
    assert 1.0 < out["pesq_nb_input"] < out["pesq_nb"] < 4.5
    assert 0.3 < out["stoi_input"] < out["stoi"] <= 1.0
    as32 = bss_eval_speech(*(a.astype(np.float32) for a in (speech, noise, estimate, mixture)))
    assert as32["sdr"] == pytest.approx(out["sdr"], abs=0.01)
