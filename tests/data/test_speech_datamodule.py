"""The speech DataModule: speaker and noise splits, sizes, determinism, mixtures."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch

from vaenmf.data.features import magnitude
from vaenmf.data.mixing import snr_db
from vaenmf.data.speech import SpeechDataModule
from vaenmf.data.synthetic import make_noise, make_speakers, synth_utterance
from vaenmf.data.timit import CORE_TEST_SPEAKERS
from vaenmf.errors import ConfigError, CorpusLayoutError, DataError

SMALL = dict(
    demo_speakers=6,
    demo_utts_per_speaker=3,
    demo_noise_seconds=15.0,
    dict_speech_frames=1000,
    dict_noise_frames=800,
    n_test_utterances=3,
    test_snrs=(-5, 0, 5, 10),
)


@pytest.fixture(scope="module")
def dm():
    module = SpeechDataModule(noise="factory", seed=0, **SMALL)
    module.setup("fit")
    return module


@pytest.fixture(scope="module")
def pooled():
    module = SpeechDataModule(noise="pooled", seed=0, **SMALL)
    module.setup()
    return module


def _is_column_subset(A: torch.Tensor, B: torch.Tensor) -> bool:
    """Every column of A equals some column of B (both (m, n))."""
    d = torch.cdist(A.T.double(), B.T.double())
    return bool((d.min(dim=1).values < 1e-6 * (1 + B.abs().max())).all())


def test_speakers_disjoint(dm):
    d, t, s = set(dm.dictionary_speakers), set(dm.train_speakers), set(dm.test_speakers)
    assert len(d) == 2 and len(t) == 2 and len(s) == 2
    assert not (d & t) and not (d & s) and not (t & s)
    # Gender-balanced parts (demo ids start with M/F).
    assert {x[0] for x in s} == {"M", "F"}
    assert {m.speaker for m in dm.training_mixtures()} <= t
    assert {m.speaker for ms in dm.test_mixtures().values() for m in ms} <= s


def test_shapes_and_sizes(dm):
    S, N = dm.speech_dictionary_frames(), dm.noise_dictionary_frames()
    assert S.shape == (257, 1000) and N.shape == (257, 800)
    assert S.dtype == N.dtype == torch.float32
    assert len(dm.training_mixtures()) == 2 * 3  # every utterance of the 2 training speakers, once
    test = dm.test_mixtures()
    assert list(test) == [-5, 0, 5, 10]
    assert all(len(v) == 3 for v in test.values())
    assert len(dm.test_utterances) == 3


def test_mixtures_are_consistent(dm):
    names = set()
    for m in dm.training_mixtures() + [m for ms in dm.test_mixtures().values() for m in ms]:
        assert m.sr == 16000 and m.noise_kind == "factory"
        assert m.speech.shape == m.noise.shape == m.mixture.shape
        assert abs(snr_db(m.speech, m.noise) - m.snr) < 0.01
        assert float((m.mixture - m.speech - m.noise).abs().max()) < 1e-5
        assert float(m.mixture.abs().max()) <= 1.0
        names.add(m.name)
    assert len(names) == 6 + 12
    assert {m.snr for m in dm.training_mixtures()} <= set(dm.train_snrs)
    # One noise segment per test utterance, shared by its SNRs.
    by_utt = {}
    for ms in dm.test_mixtures().values():
        for m in ms:
            by_utt.setdefault(m.utterance, set()).add(m.noise_offset)
    assert all(len(v) == 1 for v in by_utt.values())


def test_noise_split_is_disjoint_in_time(dm):
    split = dm.noise_split["factory"]
    total = dm.noises["factory"].numel()
    assert split == round(0.6 * total)
    for m in dm.training_mixtures():
        assert m.noise_offset >= 0 and m.noise_offset + m.noise.numel() <= split
    for ms in dm.test_mixtures().values():
        for m in ms:
            assert split <= m.noise_offset and m.noise_offset + m.noise.numel() <= total
            # The recorded offset is where the noise really came from.
            seg = dm.noises["factory"][m.noise_offset : m.noise_offset + m.noise.numel()].double()
            ratio = m.noise.double() / seg
            assert float(ratio.std() / ratio.mean()) < 1e-4
    assert _is_column_subset(dm.noise_dictionary_frames(), magnitude(dm.noise_train_part("factory")))


def test_test_noise_never_reaches_training(dm):
    """Replacing the test part of the noise changes nothing that training sees."""
    other = SpeechDataModule(noise="factory", seed=0, **SMALL)
    other.setup()
    split = other.noise_split["factory"]
    noise = other.noises["factory"].clone()
    noise[split:] = torch.randn(noise.numel() - split, generator=torch.Generator().manual_seed(1))
    other.noises["factory"] = noise
    assert torch.equal(other.noise_dictionary_frames(), dm.noise_dictionary_frames())
    for a, b in zip(other.training_mixtures(), dm.training_mixtures(), strict=True):
        assert a.name == b.name and torch.equal(a.mixture, b.mixture)
    assert not torch.equal(other.test_mixtures()[0][0].noise, dm.test_mixtures()[0][0].noise)


def test_deterministic_and_seeded(dm):
    again = SpeechDataModule(noise="factory", seed=0, **SMALL)
    again.setup()
    again.setup()  # idempotent
    assert torch.equal(again.speech_dictionary_frames(), dm.speech_dictionary_frames())
    assert torch.equal(again.test_mixtures()[5][1].mixture, dm.test_mixtures()[5][1].mixture)
    other = SpeechDataModule(noise="factory", seed=1, **SMALL)
    other.setup()
    assert not torch.equal(other.speech_dictionary_frames()[:, :10], dm.speech_dictionary_frames()[:, :10])
    dm.setup()
    assert dm.speech_dictionary_frames() is dm.speech_dictionary_frames()  # cached, not recomputed


def test_pooled_half_half(pooled):
    N = pooled.noise_dictionary_frames()
    assert N.shape == (257, 800)
    for kind in ("factory", "babble"):
        part = pooled.noise_dictionary_frames(kind)
        assert part.shape == (257, 400)
        assert _is_column_subset(part, magnitude(pooled.noise_train_part(kind)))
    assert torch.equal(
        N,
        torch.cat(
            [pooled.noise_dictionary_frames("factory"), pooled.noise_dictionary_frames("babble")], dim=1
        ),
    )
    kinds = [m.noise_kind for m in pooled.training_mixtures()]
    assert kinds.count("factory") == kinds.count("babble") == 3
    for ms in pooled.test_mixtures().values():
        assert len(ms) == 2 * 3
        assert sorted(m.noise_kind for m in ms) == ["babble"] * 3 + ["factory"] * 3
        for m in ms:
            assert m.noise_offset >= pooled.noise_split[m.noise_kind]
    assert pooled.summary()["noise_seconds"] == {"factory": 15.0, "babble": 15.0}


def test_fewer_frames_available_than_asked():
    module = SpeechDataModule(
        **{
            **SMALL,
            "demo_noise_seconds": 5.0,
            "dict_noise_frames": 9000,
            "dict_speech_frames": 10**6,
            "n_test_utterances": 1,
        }
    )
    module.setup()
    assert module.noise_dictionary_frames().shape == (257, 1 + round(0.6 * 5 * 16000) // 128)
    # All non-silent frames of the dictionary speakers.
    assert 500 < module.speech_dictionary_frames().shape[1] < 2 * 3 * 4 * 125


def test_noise_too_short_for_utterance():
    module = SpeechDataModule(**{**SMALL, "demo_noise_seconds": 3.0})
    module.setup()
    with pytest.raises(DataError, match="test part of the factory noise"):
        module.test_mixtures()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"corpus": "wsj"}, "data.corpus"),
        ({"noise": "street"}, "data.noise"),
        ({"noise_train_fraction": 1.0}, "noise_train_fraction"),
        ({"dict_speech_frames": 0}, "dict_speech_frames"),
        ({"n_test_utterances": -1}, "n_test_utterances"),
        ({"test_snrs": []}, "test_snrs"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SpeechDataModule(**kwargs)


def test_config_errors_at_setup():
    with pytest.raises(ConfigError, match="data_root"):
        SpeechDataModule(corpus="timit").setup()
    with pytest.raises(ConfigError, match="at least 3 speakers"):
        SpeechDataModule(demo_speakers=2).setup()


@pytest.fixture
def fake_corpora(tmp_path, write_riff, write_sphere):
    """TIMIT (LDC layout, synthetic speech, SPHERE and RIFF) + NOISEX-92 (.mat at 19.98 kHz, .wav)."""
    train = [("DR1", "FCJF0"), ("DR1", "MDPK0"), ("DR2", "FAEM0"), ("DR2", "MARC0")]
    test = [("DR1", "MDAB0"), ("DR1", "FELC0"), ("DR1", "MREB0")]
    voices = make_speakers(7, seed=5)
    rng = np.random.default_rng(0)
    k = 0
    for split, group in (("TRAIN", train), ("TEST", test)):
        for dr, spk in group:
            for utt in ("SA1", "SI1000", "SX100"):
                wave = synth_utterance(voices[k], rng, duration_s=1.6)
                path = tmp_path / "timit" / "TIMIT" / split / dr / spk / f"{utt}.WAV"
                if utt == "SX100":
                    write_sphere(path, np.round(wave * 32767).astype(np.int16))
                else:
                    write_riff(path, wave)
            k += 1
    noise = make_noise("factory", 12.0, seed=0).numpy() * 32767  # int16 scale, as NOISEX-92's .mat files
    (tmp_path / "noisex92").mkdir()
    scipy.io.savemat(
        str(tmp_path / "noisex92" / "factory1.mat"), {"factory1": noise.astype(np.float64)[:, None]}
    )
    write_riff(tmp_path / "noisex92" / "babble.wav", make_noise("babble", 10.0, seed=0).numpy())
    return tmp_path


def test_timit_layout(fake_corpora):
    module = SpeechDataModule(
        corpus="timit",
        data_root=str(fake_corpora),
        noise="pooled",
        dict_speech_frames=300,
        dict_noise_frames=200,
        test_snrs=(0,),
    )
    module.setup()
    assert module.test_speakers == ["FELC0", "MDAB0"]  # the core test speakers present; not MREB0
    assert set(module.test_speakers) <= set(CORE_TEST_SPEAKERS)
    assert len(module.dictionary_speakers) == len(module.train_speakers) == 2
    assert not set(module.dictionary_speakers) & set(module.train_speakers)
    assert module.speech_dictionary_frames().shape == (257, 300)
    assert module.noise_dictionary_frames().shape == (257, 200)
    # 12 s at (assumed) 19.98 kHz -> 16 kHz.
    assert module.noises["factory"].numel() == int(np.ceil(12 * 16000 * 800 / 999))
    assert module.noises["babble"].numel() == 10 * 16000
    assert len(module.training_mixtures()) == 2 * 2  # SI + SX of 2 training speakers (no SA)
    assert all("SA" not in m.utterance for m in module.training_mixtures())
    assert len(module.test_mixtures()[0]) == 2 * 2 * 2  # 2 speakers x (SI, SX) x 2 noises


def test_timit_missing_noise(fake_corpora):
    (fake_corpora / "noisex92" / "babble.wav").unlink()
    module = SpeechDataModule(corpus="timit", data_root=str(fake_corpora), noise="babble")
    with pytest.raises(CorpusLayoutError, match="babble"):
        module.setup()


@pytest.mark.realdata
def test_real_sample_corpora(shared_data):
    module = SpeechDataModule(
        corpus="timit",
        timit_root=str(shared_data / "timit_sample"),
        noisex_root=str(shared_data / "noisex92" / "jonboley_22k05_20s"),
        noise="babble",
        dict_speech_frames=2000,
        dict_noise_frames=1000,
        n_train_utterances=4,
        n_test_utterances=4,
        test_snrs=(0,),
    )
    module.setup()
    # No TRAIN/TEST split in the NLTK sample: its 16 speakers are split 8/4/4.
    assert (len(module.dictionary_speakers), len(module.train_speakers), len(module.test_speakers)) == (
        8,
        4,
        4,
    )
    assert module.speech_dictionary_frames().shape == (257, 2000)
    assert module.noise_dictionary_frames().shape == (257, 1000)
    assert module.noises["babble"].numel() == 20 * 16000
    mixes = module.test_mixtures()[0]
    assert len(mixes) == 4 and len({m.speaker for m in mixes}) == 4
    for m in mixes:
        assert abs(snr_db(m.speech, m.noise)) < 0.01
