"""The embedded demo corpora: deterministic, sane levels, speaker/noise structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaenmf.data.features import magnitude
from vaenmf.data.synthetic import make_noise, make_speakers, make_speech_corpus, synth_utterance
from vaenmf.errors import ConfigError


@pytest.fixture(scope="module")
def corpus():
    return make_speech_corpus(4, 2, seed=3)


def test_corpus_deterministic(corpus):
    again = make_speech_corpus(4, 2, seed=3)
    assert [u.name for u in corpus] == [u.name for u in again]
    for a, b in zip(corpus, again, strict=True):
        assert torch.equal(a.wave, b.wave)
    other = make_speech_corpus(4, 2, seed=4)
    assert not torch.equal(corpus[0].wave[:1000], other[0].wave[:1000])


def test_corpus_prefix_stable(corpus):
    # Utterance j of speaker i depends only on (seed, i, j), not on the corpus size.
    small = make_speech_corpus(2, 1, seed=3)
    assert torch.equal(small[0].wave, corpus[0].wave)
    assert torch.equal(small[1].wave, corpus[2].wave)


def test_corpus_levels_and_lengths(corpus):
    assert len(corpus) == 8
    assert len({u.speaker for u in corpus}) == 4
    assert len({u.name for u in corpus}) == 8
    for u in corpus:
        assert u.sr == 16000 and u.wave.dtype == torch.float32 and u.wave.ndim == 1
        assert 1.4 <= u.wave.numel() / u.sr <= 4.0
        assert float(u.wave.abs().max()) == pytest.approx(0.5, abs=1e-3)
        assert float(u.wave.pow(2).mean().sqrt()) > 0.02  # not silent
        assert bool(torch.isfinite(u.wave).all())


def test_utterances_have_pauses_and_voicing(corpus):
    mag = magnitude(corpus[0].wave)
    energy_db = 10 * torch.log10(mag.pow(2).sum(0) + 1e-20)
    # Near-silent frames (pauses, lead-in) exist, but are not digital zeros.
    assert float(energy_db.max() - energy_db.min()) > 40
    assert float(mag.min()) > 0
    # Voiced speech: most energy below 4 kHz.
    power = mag.pow(2).sum(1)
    assert float(power[:128].sum() / power.sum()) > 0.8


def test_speakers_distinct():
    speakers = make_speakers(6, seed=0)
    assert [s.gender for s in speakers] == ["M", "F"] * 3
    assert len({s.name for s in speakers}) == 6
    for s in speakers:
        assert (90 <= s.f0_mean <= 140) if s.gender == "M" else (170 <= s.f0_mean <= 250)
    assert len({round(s.formant_scale, 6) for s in speakers}) == 6
    babble = make_speakers(2, seed=0, prefix="B")
    assert babble[0].f0_mean != speakers[0].f0_mean  # a separate random stream


def test_synth_utterance_duration():
    wave = synth_utterance(make_speakers(1, 0)[0], np.random.default_rng(0), duration_s=2.0)
    assert 1.9 <= wave.size / 16000 <= 3.0


@pytest.fixture(scope="module")
def noises():
    return {k: make_noise(k, 6.0, seed=0) for k in ("babble", "factory")}


def test_noise_deterministic_and_levels(noises):
    for kind, x in noises.items():
        assert x.shape == (96000,) and x.dtype == torch.float32
        assert float(x.abs().max()) == pytest.approx(0.5, abs=1e-3)
        assert torch.equal(x, make_noise(kind, 6.0, seed=0))
        assert not torch.equal(x, make_noise(kind, 6.0, seed=1))
        # Stationary enough: the level of every second is within 6 dB of the mean.
        rms = x.reshape(6, -1).pow(2).mean(1)
        assert float((10 * torch.log10(rms / rms.mean())).abs().max()) < 6


def test_noise_spectra_differ(noises):
    def ltas(x):
        p = magnitude(x).pow(2).mean(1)
        return p / p.sum()

    babble, factory = ltas(noises["babble"]), ltas(noises["factory"])
    # Factory is broadband, babble speech-like (concentrated below 4 kHz).
    assert float(factory[128:].sum()) > 2 * float(babble[128:].sum())
    log_b, log_f = torch.log10(babble + 1e-12), torch.log10(factory + 1e-12)
    assert float((log_b - log_f).pow(2).mean().sqrt()) > 0.3  # > 3 dB rms log-spectral distance


def test_unknown_noise_kind():
    with pytest.raises(ConfigError, match="babble, factory"):
        make_noise("street", 1.0)
    with pytest.raises(ConfigError, match="positive"):
        make_noise("babble", 0.0)


def test_make_utterance_matches_corpus(corpus):
    from vaenmf.data.synthetic import make_utterance

    speakers = make_speakers(4, seed=3)
    u = make_utterance(speakers[2], 2, 1, seed=3)
    assert u.name == corpus[5].name and torch.equal(u.wave, corpus[5].wave)
