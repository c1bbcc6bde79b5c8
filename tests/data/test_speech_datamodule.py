"""The speech DataModule: speaker and noise splits (dictionary, training, validation, test), sizes, determinism,
mixtures."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from vaenmf.data.audio import audio_info
from vaenmf.data.features import magnitude
from vaenmf.data.mixing import snr_db
from vaenmf.data.speech import SpeechDataModule
from vaenmf.data.synthetic import make_dictionary_voices, make_speakers, pitch_strata
from vaenmf.data.timit import CORE_TEST_SPEAKERS, DEV_SPEAKERS
from vaenmf.errors import ConfigError, CorpusLayoutError, DataError

SMALL = dict(
    demo_speakers=6,
    demo_utts_per_speaker=3,
    # 24 s training, 4 s validation and 12 s test noise: every part longer than a demo utterance.
    demo_noise_seconds=40.0,
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


def _pairwise_disjoint(*groups) -> bool:
    return all(not set(a) & set(b) for i, a in enumerate(groups) for b in groups[i + 1 :])


def test_speakers_disjoint(dm):
    d, t, v, s = (
        set(dm.dictionary_speakers),
        set(dm.train_speakers),
        set(dm.validation_speakers),
        set(dm.test_speakers),
    )
    # The dictionary: half of the 6 demo speakers and the two extra dictionary voices (their own stream).
    assert dm.dictionary_speakers == ["M00", "F01", "MX00", "FX01"]
    assert len(t) == 2 and len(s) == 2
    # The validation speakers are the two voices after the 6 demo speakers.
    assert dm.validation_speakers == ["M06", "F07"]
    assert _pairwise_disjoint(d, t, v, s)
    # Gender-balanced parts (demo ids start with M/F).
    assert {x[0] for x in s} == {"M", "F"} == {x[0] for x in v}
    assert {m.speaker for m in dm.training_mixtures()} <= t
    assert {m.speaker for ms in dm.test_mixtures().values() for m in ms} <= s
    assert {m.speaker for ms in dm.validation_mixtures().values() for m in ms} == v
    # Their voices differ from every other speaker's (the demo speakers are all distinct draws).
    strata = pitch_strata(dm.dictionary_speakers)
    voices = {spk.name: spk for spk in make_speakers(8, seed=0, strata=strata)}
    voices |= {spk.name: spk for spk in make_dictionary_voices(2, seed=0, strata=strata)}
    for name in v:
        others = [voices[o] for o in d | t | s]
        assert all(abs(voices[name].f0_mean - o.f0_mean) > 1.0 for o in others)


def test_validation_speakers_do_not_move_the_other_speakers():
    """More or fewer validation voices leave the dictionary, training and test speakers as they were."""
    parts = []
    for n_val in (1, 2, 4):
        module = SpeechDataModule(noise="factory", seed=0, demo_validation_speakers=n_val, **SMALL)
        module.setup()
        assert len(module.validation_speakers) == n_val
        assert _pairwise_disjoint(
            module.dictionary_speakers,
            module.train_speakers,
            module.validation_speakers,
            module.test_speakers,
        )
        parts.append((module.dictionary_speakers, module.train_speakers, module.test_speakers))
    expected = (["M00", "F01", "MX00", "FX01"], ["M02", "F03"], ["M04", "F05"])
    assert parts[0] == parts[1] == parts[2] == expected


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
    # DESIGN.md: the first 60% for training, the next 10% for validation, the last 30% for test.
    assert split == round(0.6 * total)
    assert dm.noise_part_bounds("factory", "training") == (0, split)
    assert dm.noise_part_bounds("factory", "validation") == (split, round(0.7 * total))
    assert dm.noise_part_bounds("factory", "test") == (round(0.7 * total), total)
    assert dm.noise_test_part("factory").numel() == total - round(0.7 * total)
    # Every mixture's noise segment lies inside its own part.
    segments = {"training": [(m, "training") for m in dm.training_mixtures()]}
    for split_name, mixtures in (("validation", dm.validation_mixtures()), ("test", dm.test_mixtures())):
        segments[split_name] = [(m, split_name) for ms in mixtures.values() for m in ms]
    for part, pairs in segments.items():
        lo, hi = dm.noise_part_bounds("factory", part)
        assert pairs
        for m, _ in pairs:
            assert lo <= m.noise_offset and m.noise_offset + m.noise.numel() <= hi, (part, m.name)
            # The recorded offset is where the noise really came from.
            seg = dm.noises["factory"][m.noise_offset : m.noise_offset + m.noise.numel()].double()
            ratio = m.noise.double() / seg
            assert float(ratio.std() / ratio.mean()) < 1e-4
    assert _is_column_subset(dm.noise_dictionary_frames(), magnitude(dm.noise_train_part("factory")))
    assert dm.summary()["noise_parts"]["factory"] == {
        "training": [0, split],
        "validation": [split, round(0.7 * total)],
        "test": [round(0.7 * total), total],
    }


def test_validation_mixtures_are_made_like_test_mixtures(dm):
    validation = dm.validation_mixtures()
    assert list(validation) == [-5, 0, 5, 10]
    # n_validation_utterances None: all 2 x 3 utterances of the two validation speakers, at every SNR.
    assert all(len(v) == 6 for v in validation.values()) and len(dm.validation_utterances) == 6
    by_utt = {}
    for snr, ms in validation.items():
        for m in ms:
            assert m.snr == snr and abs(snr_db(m.speech, m.noise) - snr) < 0.01
            assert float((m.mixture - m.speech - m.noise).abs().max()) < 1e-5
            by_utt.setdefault(m.utterance, set()).add(m.noise_offset)
    # One noise segment per utterance, shared by its SNRs, as for the test mixtures.
    assert all(len(v) == 1 for v in by_utt.values()) and len(by_utt) == 6
    assert dm.evaluation_mixtures("validation") is validation
    assert dm.evaluation_mixtures("test") is dm.test_mixtures()
    with pytest.raises(ConfigError, match=r"eval_split 'dev'; expected one of \['validation', 'test'\]"):
        dm.evaluation_mixtures("dev")


def _fingerprint(module):
    return [
        (m.name, m.noise_offset, torch.sum(m.mixture.double() ** 2).item())
        for ms in module.test_mixtures().values()
        for m in ms
    ]


# The test mixtures of main (before the validation split) for SMALL, factory, seed 0: name and noise offset.
_MAIN_TEST_MIXTURES = [
    ("F05_u00_factory_-5dB", 533861),
    ("M04_u00_factory_-5dB", 514413),
    ("F05_u01_factory_-5dB", 447535),
    ("F05_u00_factory_+0dB", 533861),
]


def test_test_mixtures_do_not_depend_on_the_validation_split(dm):
    """Neither the number of validation speakers or utterances nor the validation noise changes a test mixture."""
    reference = _fingerprint(dm)
    for extra in ({"demo_validation_speakers": 4}, {"n_validation_utterances": 1}):
        other = SpeechDataModule(noise="factory", seed=0, **SMALL, **extra)
        other.setup()
        other.validation_mixtures()  # drawn first: must not move the test draws
        assert _fingerprint(other) == reference
        for a, b in zip(other.test_mixtures()[5], dm.test_mixtures()[5], strict=True):
            assert torch.equal(a.mixture, b.mixture) and torch.equal(a.speech, b.speech)
        assert torch.equal(other.noise_dictionary_frames(), dm.noise_dictionary_frames())
        assert torch.equal(other.speech_dictionary_frames(), dm.speech_dictionary_frames())
    # Without a validation part the test part starts where the training part ends, as on main: the same
    # utterances, speech and noise offsets as main's test mixtures.
    legacy = SpeechDataModule(noise="factory", seed=0, noise_validation_fraction=0.0, **SMALL)
    legacy.setup()
    assert [(n, o) for n, o, _ in _fingerprint(legacy)[:4]] == _MAIN_TEST_MIXTURES
    assert [n for n, _, _ in _fingerprint(legacy)] == [n for n, _, _ in reference]
    for a, b in zip(legacy.test_mixtures()[0], dm.test_mixtures()[0], strict=True):
        # Same utterances; only the noise segment moved (and with it the joint peak scaling).
        assert torch.allclose(a.speech / a.scale, b.speech / b.scale, rtol=1e-5, atol=1e-7)
    with pytest.raises(ConfigError, match="noise_validation_fraction is 0"):
        legacy.validation_mixtures()


@pytest.mark.parametrize("part", ["validation", "test"])
def test_evaluation_noise_never_reaches_training_or_the_other_split(dm, part):
    """Replacing the validation (test) part of the noise changes nothing that training or the test (validation)
    mixtures see."""
    other = SpeechDataModule(noise="factory", seed=0, **SMALL)
    other.setup()
    lo, hi = other.noise_part_bounds("factory", part)
    noise = other.noises["factory"].clone()
    noise[lo:hi] = torch.randn(hi - lo, generator=torch.Generator().manual_seed(1))
    other.noises["factory"] = noise
    assert torch.equal(other.noise_dictionary_frames(), dm.noise_dictionary_frames())
    for a, b in zip(other.training_mixtures(), dm.training_mixtures(), strict=True):
        assert a.name == b.name and torch.equal(a.mixture, b.mixture)
    kept = "test" if part == "validation" else "validation"
    for a, b in zip(other.evaluation_mixtures(kept)[0], dm.evaluation_mixtures(kept)[0], strict=True):
        assert torch.equal(a.mixture, b.mixture)
    assert not torch.equal(
        other.evaluation_mixtures(part)[0][0].noise, dm.evaluation_mixtures(part)[0][0].noise
    )


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
    assert pooled.summary()["noise_seconds"] == {"factory": 40.0, "babble": 40.0}


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
    # 2% of 40 s is 0.8 s, shorter than the demo utterances (1.5-3 s plus pauses).
    module = SpeechDataModule(**{**SMALL, "noise_validation_fraction": 0.02})
    module.setup()
    with pytest.raises(DataError, match="validation part of the factory noise"):
        module.validation_mixtures()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"corpus": "wsj"}, "data.corpus"),
        ({"noise": "pooled:street"}, "a pool needs two or more noises"),
        ({"noise": ["white", "pink"]}, "noise=pooled:white\\+pink"),
        ({"test_noise": "x:y"}, "test_noise='x:y': unknown form"),
        ({"noise_train_fraction": 1.0}, "noise_train_fraction"),
        ({"noise_validation_fraction": -0.1}, "data.noise_validation_fraction"),
        ({"noise_train_fraction": 0.7, "noise_validation_fraction": 0.3}, "must be below 1"),
        ({"n_validation_utterances": 0}, "data.n_validation_utterances"),
        ({"demo_validation_speakers": 0}, "data.demo_validation_speakers"),
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
    with pytest.raises(
        ConfigError, match="noise 'street': the demo corpus .* generates only factory and babble"
    ):
        SpeechDataModule(noise="street").setup()
    with pytest.raises(ConfigError, match="at least 3 speakers"):
        SpeechDataModule(demo_speakers=2).setup()


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
    # MREB0 (TEST/DR1) is one of Kaldi's 50 development speakers: the validation speaker.
    assert module.validation_speakers == ["MREB0"] and set(module.validation_speakers) <= set(DEV_SPEAKERS)
    assert len(module.dictionary_speakers) == len(module.train_speakers) == 2
    assert _pairwise_disjoint(
        module.dictionary_speakers, module.train_speakers, module.validation_speakers, module.test_speakers
    )
    assert sorted(module.validation_utterances) == ["DR1_MREB0_SI1000", "DR1_MREB0_SX100"]  # no SA
    assert module.speech_dictionary_frames().shape == (257, 300)
    assert module.noise_dictionary_frames().shape == (257, 200)
    # 30 s at (assumed) 19.98 kHz -> 16 kHz.
    assert module.noises["factory"].numel() == int(np.ceil(30 * 16000 * 800 / 999))
    assert module.noises["babble"].numel() == 25 * 16000
    assert len(module.training_mixtures()) == 2 * 2  # SI + SX of 2 training speakers (no SA)
    assert all("SA" not in m.utterance for m in module.training_mixtures())
    assert len(module.test_mixtures()[0]) == 2 * 2 * 2  # 2 speakers x (SI, SX) x 2 noises
    validation = module.validation_mixtures()[0]
    assert len(validation) == 1 * 2 * 2 and {m.speaker for m in validation} == {"MREB0"}
    for m in validation:
        lo, hi = module.noise_part_bounds(m.noise_kind, "validation")
        assert lo <= m.noise_offset and m.noise_offset + m.noise.numel() <= hi


def test_timit_without_development_speakers(fake_corpora, caplog):
    import shutil

    shutil.rmtree(fake_corpora / "timit" / "TIMIT" / "TEST" / "DR1" / "MREB0")
    caplog.set_level(logging.WARNING, logger="vaenmf")  # whatever an earlier test left the package logger at
    module = SpeechDataModule(corpus="timit", data_root=str(fake_corpora), noise="factory", test_snrs=(0,))
    module.setup()
    assert module.validation_speakers == [] and "development-set speakers" in caplog.text
    assert len(module.test_mixtures()[0]) == 4  # the test split is unaffected
    with pytest.raises(ConfigError, match="eval_split=validation: this data has no validation speakers"):
        module.validation_mixtures()


def test_timit_missing_noise(fake_corpora):
    (fake_corpora / "noisex92" / "babble.wav").unlink()
    module = SpeechDataModule(corpus="timit", data_root=str(fake_corpora), noise="babble")
    with pytest.raises(CorpusLayoutError, match="babble"):
        module.setup()


@pytest.mark.parametrize(
    ("kwargs", "part", "noise"),
    [
        ({"noise": "babble"}, "validation", "babble"),
        ({"noise": "factory", "test_noise": "babble"}, "validation", "babble"),  # the evaluation noise
        ({"noise": "babble", "noise_train_fraction": 0.05}, "training", "babble"),
    ],
)
def test_a_noise_part_shorter_than_an_utterance_is_refused_at_setup(
    fake_corpora, write_riff, monkeypatch, kwargs, part, noise
):
    """12 s of babble: a 1.2 s validation part, shorter than the 1.6 s utterances; refused by setup() from the
    headers, before any utterance is read (so before anything is fitted), with what to change."""
    from vaenmf.data import records

    babble = write_riff(fake_corpora / "noisex92" / "babble.wav", np.zeros(12 * 16000, np.float32) + 0.01)

    def no_reading(*args, **kw):
        raise AssertionError("setup read an utterance's samples")

    monkeypatch.setattr(records, "read_audio", no_reading)
    module = SpeechDataModule(corpus="timit", data_root=str(fake_corpora), test_snrs=(0,), **kwargs)
    with pytest.raises(DataError) as caught:
        module.setup()
    # The longest SI/SX file of the part's speakers (planned before the check: the training speakers are a seeded
    # half of TRAIN, the validation speaker is the development-set speaker MREB0).
    speakers = set({"training": module.train_speakers, "validation": module.validation_speakers}[part])
    files = [f for f in (fake_corpora / "timit").rglob("S[IX]*.WAV") if f.parent.name in speakers]
    lengths = {f"{f.parts[-3]}_{f.parent.name}_{f.stem}": audio_info(f).seconds for f in files}
    message = str(caught.value)
    seconds = {"training": 0.05 * 12, "validation": 0.1 * 12}[part]
    share = {"training": "5%", "validation": "10%"}[part]
    assert message.startswith(
        f"the {part} part of the {noise} noise ({babble}) ({seconds:.2f} s: {share} of its 12.00 s) is shorter "
        "than utterance "
    )
    name = message.split("than utterance ")[1].split(" ")[0]
    assert len(lengths) == 2 * len(speakers) and lengths[name] == max(lengths.values())
    assert f"({lengths[name]:.2f} s), the longest of the {part} utterances, so it cannot be mixed" in message
    remedy = (
        f"use a longer noise file than {babble}, or give the {part} part a larger share of it "
        f"(data.noise_train_fraction={kwargs.get('noise_train_fraction', 0.6):g}, "
        "data.noise_validation_fraction=0.1; the test part is the rest)"
    )
    # Both evaluation parts are held by default (evaluate_on not called): the message says how to hold one.
    hint = "; to score only the test split, call evaluate_on('test') before setup() (a job does: eval_split=test)"
    assert message.endswith(remedy + (hint if part == "validation" else ""))
    assert not module._ready


def test_a_job_scoring_the_test_split_is_not_refused_over_the_validation_part(fake_corpora, write_riff):
    write_riff(fake_corpora / "noisex92" / "babble.wav", np.zeros(12 * 16000, np.float32) + 0.01)
    module = SpeechDataModule(corpus="timit", data_root=str(fake_corpora), noise="babble", test_snrs=(0,))
    module.evaluate_on("test")
    module.setup()
    assert len(module.test_mixtures()[0]) == 4  # the 3.6 s test part holds every test utterance
    with pytest.raises(DataError, match="validation part of the babble noise"):
        module.validation_mixtures()  # the check in _mix is still the backstop
    # Without validation noise there is nothing to hold against the validation utterances.
    SpeechDataModule(
        corpus="timit", data_root=str(fake_corpora), noise="babble", noise_validation_fraction=0
    ).setup()
    with pytest.raises(ConfigError, match="eval_split"):
        module.evaluate_on("train")


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
        n_validation_utterances=2,
        test_snrs=(0,),
        # 20 s of noise: 10 s for training, 5 s for validation and 5 s for test, so that a TIMIT sentence (up
        # to about 4 s) fits in each part (the protocol's 10% of 235 s is 23.5 s).
        noise_train_fraction=0.5,
        noise_validation_fraction=0.25,
    )
    module.setup()
    # No TRAIN/TEST split in the NLTK sample: its 16 speakers are split 6/4/2/4 (the training and test
    # speakers are those of the three-way split before the validation split existed).
    groups = (
        module.dictionary_speakers,
        module.train_speakers,
        module.validation_speakers,
        module.test_speakers,
    )
    assert tuple(len(g) for g in groups) == (6, 4, 2, 4)
    assert _pairwise_disjoint(*groups)
    assert module.validation_speakers == ["FAPB0", "MARC0"]
    assert module.test_speakers == ["FTLG0", "FVMH0", "MBMA1", "MCPM0"]
    assert module.speech_dictionary_frames().shape == (257, 2000)
    assert module.noise_dictionary_frames().shape == (257, 1000)
    assert module.noises["babble"].numel() == 20 * 16000
    mixes = module.test_mixtures()[0]
    assert len(mixes) == 4 and len({m.speaker for m in mixes}) == 4
    for m in mixes:
        assert abs(snr_db(m.speech, m.noise)) < 0.01
    validation = module.validation_mixtures()[0]
    assert len(validation) == 2 and {m.speaker for m in validation} == set(module.validation_speakers)
    for m in validation:
        lo, hi = module.noise_part_bounds("babble", "validation")
        assert lo <= m.noise_offset and m.noise_offset + m.noise.numel() <= hi


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_demo_dictionary_voices_span_each_genders_range_of_pitch(seed):
    """Six dictionary voices, three per gender, one mean pitch in each third of the gender's range; every other
    speaker is the voice it was without the extra dictionary voices."""
    from vaenmf.data.synthetic import TARGET_VOICES

    module = SpeechDataModule(noise="factory", seed=seed, demo_speakers=8, demo_utts_per_speaker=1)
    module.setup()
    assert module.dictionary_speakers == ["M00", "F01", "M02", "F03", "MX00", "FX01"]
    strata = pitch_strata(module.dictionary_speakers)
    profiles = {s.name: s for s in make_speakers(10, seed, strata=strata)}
    profiles |= {s.name: s for s in make_dictionary_voices(2, seed, strata)}
    for gender in "MF":
        lo, hi = TARGET_VOICES[gender].f0
        thirds = sorted(
            int((profiles[n].f0_mean - lo) / (hi - lo) * 3)
            for n in module.dictionary_speakers
            if n[0] == gender
        )
        assert thirds == [0, 1, 2]
    uniform = {s.name: s for s in make_speakers(10, seed)}
    for name in module.train_speakers + module.validation_speakers + module.test_speakers:
        assert profiles[name] == uniform[name]
