"""Noise conditions beyond the paper's two: any NOISEX-92 noise by name, pools, a noise file by path, and
mismatched-noise evaluation (``test_noise``), on generated files and on the real excerpts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vaenmf.data.noises import NoiseSpec, noise_stage_name, noise_stream, parse_noise
from vaenmf.data.speech import SpeechDataModule
from vaenmf.errors import AudioReadError, ConfigError, CorpusLayoutError

SMALL = dict(
    demo_speakers=6,
    demo_utts_per_speaker=3,
    demo_noise_seconds=40.0,
    dict_speech_frames=1000,
    dict_noise_frames=800,
    n_test_utterances=3,
    test_snrs=(0, 5),
)


@pytest.fixture(scope="module")
def noise_dir(tmp_path_factory) -> Path:
    """A NOISEX-92-like folder: white.wav at 22.05 kHz, pink.flac at 8 kHz (40 s each), and hum.flac elsewhere."""
    root = tmp_path_factory.mktemp("noises")
    rng = np.random.default_rng(0)
    (root / "noisex92").mkdir()
    sf.write(
        root / "noisex92" / "white.wav", (0.1 * rng.standard_normal(22050 * 40)).astype(np.float32), 22050
    )
    spectrum = np.fft.rfft(rng.standard_normal(8000 * 40))
    pink = np.fft.irfft(spectrum / np.sqrt(np.arange(1, spectrum.size + 1)))
    sf.write(root / "noisex92" / "pink.flac", (0.3 * pink / np.abs(pink).max()).astype(np.float32), 8000)
    t = np.arange(44100 * 40) / 44100
    hum = 0.2 * np.sin(2 * np.pi * 100 * t) + 0.02 * rng.standard_normal(t.size)
    sf.write(root / "hum.flac", hum.astype(np.float32), 44100)
    return root


def test_condition_strings():
    assert parse_noise("factory") == (NoiseSpec("factory"),)
    assert parse_noise("pooled") == (NoiseSpec("factory"), NoiseSpec("babble"))
    assert parse_noise("White") == (NoiseSpec("white"),)
    assert parse_noise("pooled:white+pink+f16") == tuple(NoiseSpec(n) for n in ("white", "pink", "f16"))
    assert parse_noise("/data/noise/hum.flac") == (NoiseSpec("hum", Path("/data/noise/hum.flac")),)
    assert parse_noise("hum.wav") == (NoiseSpec("hum", Path("hum.wav")),)
    assert parse_noise("pooled:babble+/x/hum.wav") == (
        NoiseSpec("babble"),
        NoiseSpec("hum", Path("/x/hum.wav")),
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            ["white", "pink"],
            r"noise=\['white', 'pink'\]: a pool of noises is written as one word, noise=pooled:white\+pink",
        ),
        ("", "noise must be a noise condition"),
        (None, "noise must be a noise condition"),
        ("pooled:white", "a pool needs two or more noises"),
        ("pooled:white+", "a pool needs two or more noises"),
        ("pooled:white+White", "names white twice"),
        ("pooled:/a/hum.wav+/b/hum.flac", "names hum twice"),
        ("mix:white", "unknown form"),
        ("white noise", "is not a noise name"),
        ("pooled:pooled+white", "is not a noise name"),
    ],
)
def test_bad_conditions_are_one_message_naming_the_key(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_noise(value)


def test_seed_streams_and_stage_names():
    # The paper's noises keep their streams (their mixtures are those of earlier versions); others are stable.
    assert noise_stream("factory") == 0 and noise_stream("babble") == 1
    assert noise_stream("white") == noise_stream("white") != noise_stream("pink")
    assert noise_stage_name("factory") == "factory" and noise_stage_name("pooled") == "pooled"
    name = noise_stage_name("pooled:white+/data/my noises/hum.flac")
    assert name.startswith("pooled_white_") and "/" not in name and " " not in name
    assert name != noise_stage_name("pooled:white+/data/my noises/hum.wav")


def test_any_noisex_noise_by_name_and_a_pool_of_them(noise_dir):
    folder = str(noise_dir / "noisex92")
    white = SpeechDataModule(**SMALL, noise="white", noisex_root=folder)
    white.setup()
    assert white.noise_kinds == ("white",) and white.noise_sources["white"].endswith("white.wav")
    assert white.noises["white"].numel() == 40 * 16000  # 22.05 kHz resampled to 16 kHz
    assert white.noise_dictionary_frames().shape == (257, 800)
    mixtures = [m for ms in white.test_mixtures().values() for m in ms]
    assert {m.noise_kind for m in mixtures} == {"white"} and all("_white_" in m.name for m in mixtures)

    pool = SpeechDataModule(**SMALL, noise="pooled:white+pink", noisex_root=folder)
    pool.setup()
    assert pool.noises["pink"].numel() == 40 * 16000  # FLAC at 8 kHz, upsampled
    assert (
        pool.noise_dictionary_frames("white").shape[1] == pool.noise_dictionary_frames("pink").shape[1] == 400
    )
    # Each noise's frames and test mixtures are its own, alone or pooled (keyed by the noise's name).
    torch.testing.assert_close(pool.noise_dictionary_frames("white"), _frames(folder, "white", 400))
    pooled_white = [m for ms in pool.test_mixtures().values() for m in ms if m.noise_kind == "white"]
    assert [m.noise_offset for m in pooled_white] == [m.noise_offset for m in mixtures]
    assert {m.noise_kind for m in pool.training_mixtures()} == {"white", "pink"}


def _frames(folder: str, name: str, n: int) -> torch.Tensor:
    module = SpeechDataModule(**{**SMALL, "dict_noise_frames": n}, noise=name, noisex_root=folder)
    module.setup()
    return module.noise_dictionary_frames()


def test_the_paper_conditions_are_unchanged_by_the_new_spellings():
    pooled = SpeechDataModule(**SMALL, noise="pooled")
    spelled = SpeechDataModule(**SMALL, noise="pooled:factory+babble")
    factory = SpeechDataModule(**SMALL, noise="factory")
    for module in (pooled, spelled, factory):
        module.setup()
    torch.testing.assert_close(pooled.noise_dictionary_frames(), spelled.noise_dictionary_frames())
    names = [m.name for ms in pooled.test_mixtures().values() for m in ms]
    assert names == [m.name for ms in spelled.test_mixtures().values() for m in ms]
    factory_offsets = [m.noise_offset for ms in factory.test_mixtures().values() for m in ms]
    assert factory_offsets == [
        m.noise_offset for ms in pooled.test_mixtures().values() for m in ms if m.noise_kind == "factory"
    ]


def test_a_noise_file_by_path_any_rate(noise_dir):
    path = noise_dir / "hum.flac"
    module = SpeechDataModule(**SMALL, noise=str(path))
    module.setup()
    assert module.noise_kinds == ("hum",) and module.noise_sources["hum"] == str(path.resolve())
    assert module.noises["hum"].numel() == 40 * 16000  # 44.1 kHz resampled
    assert {m.noise_kind for ms in module.test_mixtures().values() for m in ms} == {"hum"}
    assert module.summary()["noise"] == str(path)


def test_mismatched_noise_trains_on_one_condition_and_tests_on_another(noise_dir):
    folder = str(noise_dir / "noisex92")
    module = SpeechDataModule(**SMALL, noise="white", test_noise="pink", noisex_root=folder)
    module.setup()
    assert module.noise_kinds == ("white",) and module.eval_kinds == ("pink",)
    assert module.noise_dictionary_frames().shape[1] == 800  # white only
    assert {m.noise_kind for m in module.training_mixtures()} == {"white"}
    for split in ("test", "validation"):
        mixtures = [m for ms in module.evaluation_mixtures(split).values() for m in ms]
        assert {m.noise_kind for m in mixtures} == {"pink"}
        for m in mixtures:  # the pink noise's evaluation part only
            lo, hi = module.noise_part_bounds("pink", split)
            assert lo <= m.noise_offset and m.noise_offset + m.noise.numel() <= hi
    # The test mixtures are those a job trained and tested on pink scores.
    matched = SpeechDataModule(**SMALL, noise="pink", noisex_root=folder)
    matched.setup()
    assert [(m.name, m.noise_offset) for ms in module.test_mixtures().values() for m in ms] == [
        (m.name, m.noise_offset) for ms in matched.test_mixtures().values() for m in ms
    ]
    assert module.summary()["test_noise"] == "pink"
    # On the demo: trained on factory, tested on babble.
    demo = SpeechDataModule(**SMALL, noise="factory", test_noise="babble")
    demo.setup()
    assert {m.noise_kind for ms in demo.test_mixtures().values() for m in ms} == {"babble"}


def test_bad_noise_input_is_one_message_before_any_work(noise_dir, tmp_path):
    folder = str(noise_dir / "noisex92")
    with pytest.raises(
        CorpusLayoutError, match=r"no NOISEX-92 'whte' noise in .*noises found there: pink, white "
    ):
        SpeechDataModule(**SMALL, noise="whte", noisex_root=folder).setup()
    missing = tmp_path / "nope.wav"
    with pytest.raises(CorpusLayoutError, match=f"noise file {missing} does not exist"):
        SpeechDataModule(**SMALL, noise=str(missing)).setup()
    with pytest.raises(CorpusLayoutError, match="test_noise='/x/nope.flac'"):
        SpeechDataModule(**SMALL, test_noise="/x/nope.flac").setup()
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all")
    with pytest.raises(AudioReadError, match="garbage.wav"):
        SpeechDataModule(**SMALL, noise=str(garbage)).setup()
    with pytest.raises(
        ConfigError, match=r"noise 'white': the demo corpus .*\+data.noisex_root=/path/to/noisex92"
    ):
        SpeechDataModule(**SMALL, noise="white").setup()
    with pytest.raises(ConfigError, match="both have a noise named 'hum'"):
        SpeechDataModule(**SMALL, noise="/a/hum.wav", test_noise="/b/hum.wav")


@pytest.mark.realdata
def test_real_noisex_excerpts_by_name_and_by_path(shared_data):
    folder = shared_data / "noisex92" / "jonboley_22k05_20s"
    kw = {**SMALL, "demo_noise_seconds": 20.0, "noise_train_fraction": 0.5, "noise_validation_fraction": 0.2}
    module = SpeechDataModule(**kw, noise="pooled:factory2+babble", noisex_root=str(folder))
    module.setup()
    assert module.noise_sources["factory2"] == str(folder / "factory2.wav")
    assert module.noises["factory2"].numel() == pytest.approx(20 * 16000, abs=2)
    # The 19.98 kHz babble excerpt as a user's own file, mismatched with the 22.05 kHz factory2 it is trained on.
    own = shared_data / "noisex92" / "kunaljathal_19k98_orig_rate" / "babble.wav"
    module = SpeechDataModule(**kw, noise="factory2", test_noise=str(own), noisex_root=str(folder))
    module.setup()
    assert module.eval_kinds == ("babble",) and module.noise_sources["babble"] == str(own.resolve())
    assert module.noises["babble"].numel() == pytest.approx(17.7 * 16000, rel=0.01)
    assert {m.noise_kind for ms in module.test_mixtures().values() for m in ms} == {"babble"}
