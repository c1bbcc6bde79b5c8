"""The record of what the data gave fewer of than a job asked (vaenmf.data.shortfalls), per data module."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from vaenmf.data.shortfalls import parse_shortfalls, shortfall, shortfall_text, summarise_shortfalls
from vaenmf.data.speech import SpeechDataModule
from vaenmf.data.synergy import SynergyDataModule

SMALL = dict(
    demo_speakers=6,
    demo_utts_per_speaker=3,
    demo_noise_seconds=40.0,
    dict_speech_frames=1000,
    dict_noise_frames=800,
    n_test_utterances=3,
    test_snrs=(0,),
)


def test_entries_their_text_and_the_heading_line():
    noise = shortfall("noise dictionary", 9000, 1501, "factory", "frames", source="/x/factory1.wav")
    assert noise == {
        "what": "noise dictionary",
        "asked": 9000,
        "got": 1501,
        "unit": "frames",
        "where": "factory",
        "source": "/x/factory1.wav",
    }
    assert shortfall_text(noise) == "noise dictionary 1501 of 9000 frames (factory)"
    test = shortfall("test utterances", 192, 32, "TIMIT core test set")
    assert summarise_shortfalls([[noise, test], [noise]]) == (
        "SHORT of the protocol: noise dictionary 1501 of 9000 frames (factory); test utterances 32 of 192 "
        "(TIMIT core test set) [1 of 2 jobs]"
    )
    assert summarise_shortfalls([[], []]) == ""
    # Older files have no key; malformed entries are skipped, not fatal.
    assert parse_shortfalls(None) == [] and parse_shortfalls("x") == []
    assert parse_shortfalls([noise, {"what": "x"}, 3]) == [noise]


def test_the_demo_at_full_size_falls_short_of_nothing_and_a_short_noise_is_recorded():
    full = SpeechDataModule(**SMALL)
    full.setup()
    full.speech_dictionary_frames(), full.noise_dictionary_frames()
    assert full.shortfalls("test") == [] and full.shortfalls("validation") == []

    short = SpeechDataModule(
        **{**SMALL, "noise": "pooled", "demo_noise_seconds": 5.0, "dict_speech_frames": 10**6}
    )
    short.setup()
    assert short.shortfalls("test") == []  # nothing drawn yet
    speech = short.speech_dictionary_frames().shape[1]
    short.noise_dictionary_frames()
    got = 1 + round(0.6 * 5 * 16000) // 128  # frames of the 3 s training part
    assert [shortfall_text(e) for e in short.shortfalls("test")] == [
        f"speech dictionary {speech} of 1000000 frames (dictionary speakers)",
        f"noise dictionary {got} of 400 frames (factory)",
        f"noise dictionary {got} of 400 frames (babble)",
    ]


def test_timit_short_of_the_core_test_set_and_the_train_speakers(fake_corpora):
    module = SpeechDataModule(
        corpus="timit", data_root=str(fake_corpora), noise="factory", dict_speech_frames=300, test_snrs=(0,)
    )
    module.setup()
    module.noise_dictionary_frames()
    texts = [shortfall_text(e) for e in module.shortfalls("test")]
    assert texts[:2] == [
        "dictionary and training speakers 4 of 462 (TIMIT TRAIN)",
        "test utterances 4 of 192 (TIMIT core test set)",
    ]
    assert texts[2].startswith("noise dictionary ") and texts[2].endswith(" of 9000 frames (factory)")
    validation = [shortfall_text(e) for e in module.shortfalls("validation")]
    assert "validation utterances 2 of 400 (TIMIT development set)" in validation
    assert not any(t.startswith("test utterances") for t in validation)
    # An explicit smaller count is what was asked: not a shortfall.
    module = SpeechDataModule(
        corpus="timit", data_root=str(fake_corpora), n_test_utterances=2, test_snrs=(0,)
    )
    module.setup()
    assert not any(e["what"] == "test utterances" for e in module.shortfalls("test"))


@pytest.mark.realdata
def test_a_20_s_noisex_excerpt_gives_1501_of_9000_frames(shared_data):
    module = SpeechDataModule(
        corpus="timit",
        timit_root=str(shared_data / "timit_sample"),
        noisex_root=str(shared_data / "noisex92" / "jonboley_22k05_20s"),
        noise="factory",
        n_train_utterances=4,
        n_test_utterances=None,
        test_snrs=(0,),
    )
    module.evaluate_on("test")  # the excerpt's 2 s validation part holds no sample utterance; not scored here
    module.setup()
    module.noise_dictionary_frames()
    entries = module.shortfalls("test")
    assert shortfall_text(entries[-1]) == "noise dictionary 1501 of 9000 frames (factory)"
    assert entries[-1]["source"].endswith("jonboley_22k05_20s/factory1.wav")
    texts = [shortfall_text(e) for e in entries]
    # NLTK's sample has no TRAIN/TEST split: 10 of its 16 speakers make the dictionary and training mixtures,
    # 4 the test split (their 8 SI/SX utterances each).
    assert texts[:2] == [
        "dictionary and training speakers 10 of 462 (TIMIT TRAIN)",
        "test utterances 32 of 192 (no TIMIT core test set: speakers of the copy's own)",
    ]


def _db1(path, subject, drop_movement=None, drop_repetition=None):
    """A DB1 exercise-1 file: 12 movements x 10 repetitions of 30 samples, rest between them."""
    movement, repetition = [], []
    for m in range(1, 13):
        for r in range(1, 11):
            keep = m != drop_movement and (m, r) != drop_repetition
            movement += [m if keep else 0] * 30 + [0] * 10
            repetition += [r if keep else 0] * 30 + [0] * 10
    n = len(movement)
    rng = np.random.default_rng(subject)
    scipy.io.savemat(
        path,
        {
            "emg": rng.random((n, 10)) + 0.1,
            "restimulus": np.array(movement, np.float64)[:, None],
            "rerepetition": np.array(repetition, np.float64)[:, None],
        },
    )


def test_db1_movements_and_repetitions_missing(tmp_path):
    _db1(tmp_path / "S1_A1_E1.mat", 1)
    _db1(tmp_path / "S2_A1_E1.mat", 2, drop_movement=5, drop_repetition=(3, 2))
    module = SynergyDataModule(corpus="ninapro", root=str(tmp_path), subjects=[1, 2])
    module.setup()
    assert [shortfall_text(e) for e in module.shortfalls()] == [
        "movements 11 of 12 (subject 2: movement 5 absent)",
        "held-out repetitions 2 of 3 (subject 2, movement 3: repetition 2 absent)",
    ]
    assert SynergyDataModule(corpus="ninapro", root=str(tmp_path), subjects=[1]).shortfalls() == []
    demo = SynergyDataModule(corpus="demo", subjects=[1], demo_movements=3, demo_movement_seconds=0.5)
    assert demo.shortfalls() == []  # the demo asks for its own demo_movements
