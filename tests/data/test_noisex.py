"""NOISEX-92 file lookup and loading."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from vaenmf.data.noisex import find_noise_file, load_noise
from vaenmf.errors import ConfigError, CorpusLayoutError


def test_mat_at_19980_resampled(tmp_path):
    x = (np.random.default_rng(0).uniform(-0.3, 0.3, 19980) * 32768).round()
    scipy.io.savemat(str(tmp_path / "FACTORY1.MAT"), {"factory1": x[:, None]})
    noise = load_noise(tmp_path, "factory")
    assert noise.numel() == 16000  # 1 s at 19.98 kHz -> 1 s at 16 kHz
    assert float(noise.abs().max()) <= 1.0


def test_wav_in_subfolder(tmp_path, write_riff):
    write_riff(tmp_path / "sub" / "Babble.wav", np.full(800, 0.25, dtype=np.float32), sr=8000)
    assert find_noise_file(tmp_path, "babble").name == "Babble.wav"
    assert load_noise(tmp_path, "babble").numel() == 1600


def test_root_level_and_mat_preferred(tmp_path, write_riff):
    write_riff(tmp_path / "sub" / "babble.wav", np.zeros(10, dtype=np.float32))
    write_riff(tmp_path / "babble.wav", np.zeros(10, dtype=np.float32))
    scipy.io.savemat(str(tmp_path / "babble.mat"), {"babble": np.zeros(10)})
    assert find_noise_file(tmp_path, "babble") == tmp_path / "babble.mat"


def test_missing_lists_what_was_looked_for(tmp_path, write_riff):
    write_riff(tmp_path / "factory2.wav", np.zeros(10, dtype=np.float32))
    with pytest.raises(CorpusLayoutError, match=r"factory1\.mat / factory1\.wav.*factory2\.wav"):
        find_noise_file(tmp_path, "factory")
    with pytest.raises(CorpusLayoutError, match="does not exist"):
        find_noise_file(tmp_path / "nope", "factory")
    # Any NOISEX-92 name is looked for; one that is not there lists the noises that are.
    with pytest.raises(
        CorpusLayoutError, match=r"no NOISEX-92 'white' noise .* noises found there: factory2 "
    ):
        find_noise_file(tmp_path, "white")
    with pytest.raises(ConfigError, match="named by its file name"):
        find_noise_file(tmp_path, "a/b")


@pytest.mark.realdata
def test_real_noisex_wavs(shared_data):
    from vaenmf.data.audio import read_audio

    root = shared_data / "noisex92"
    wave, sr = read_audio(root / "kunaljathal_19k98_orig_rate" / "babble.wav")
    assert sr == 19980 and wave.numel() == 354042
    wave16, sr16 = read_audio(root / "kunaljathal_19k98_orig_rate" / "babble.wav", target_sr=16000)
    assert sr16 == 16000 and wave16.numel() == int(np.ceil(354042 * 800 / 999))
    for name in ("babble", "factory1", "factory2"):
        w, sr = read_audio(root / "jonboley_22k05_20s" / f"{name}.wav")
        assert sr == 22050 and w.numel() == 20 * 22050
        assert float(w.pow(2).mean().sqrt()) > 0.01 and float(w.abs().max()) <= 1.0
    factory = load_noise(root / "jonboley_22k05_20s", "factory")
    assert factory.numel() == 20 * 16000


@pytest.mark.realdata
def test_real_noisex_mat(shared_data):
    from vaenmf.data.audio import read_audio

    path = shared_data / "noisex92" / "limingshi_16k_10s" / "factoryNoise.mat"
    wave, sr = read_audio(path, mat_sample_rate=16000)
    assert sr == 16000 and wave.numel() == 160000
    raw = scipy.io.loadmat(str(path))["factoryNoise"][:, 0]
    # int16 scale (this file overshoots int16 slightly, so it is peak-normalised): proportional to the raw data.
    assert float(wave.abs().max()) <= 1.0
    np.testing.assert_allclose(wave.numpy(), raw / np.abs(raw).max(), atol=1e-6)


def test_listing_is_in_the_order_find_noise_file_prefers(tmp_path, write_riff):
    from vaenmf.data.noisex import list_noise_files, noise_candidates

    write_riff(tmp_path / "b" / "babble.wav", np.zeros(10, dtype=np.float32))
    write_riff(tmp_path / "a" / "babble.wav", np.zeros(10, dtype=np.float32))
    write_riff(tmp_path / "white.wav", np.zeros(10, dtype=np.float32))
    scipy.io.savemat(str(tmp_path / "a" / "babble.mat"), {"babble": np.zeros(10)})
    (tmp_path / "README.txt").write_text("not a noise")
    names = [str(p.relative_to(tmp_path)) for p in list_noise_files(tmp_path)]
    assert names == ["white.wav", "a/babble.mat", "a/babble.wav", "b/babble.wav"]
    assert (
        noise_candidates(tmp_path, "BABBLE")[0]
        == find_noise_file(tmp_path, "babble")
        == tmp_path / "a" / "babble.mat"
    )
    with pytest.raises(
        CorpusLayoutError, match=r"nope does not exist; expected a folder holding babble\.mat"
    ):
        list_noise_files(tmp_path / "nope")


def test_pipeline_rate_constant_matches_the_front_end():
    import inspect

    from vaenmf.data import features, noisex

    assert noisex._PIPELINE_RATE == features.SAMPLE_RATE
    assert inspect.signature(load_noise).parameters["target_sr"].default == features.SAMPLE_RATE


def test_mat_without_the_noise_variable_names_file_and_variables(tmp_path):
    from vaenmf.errors import AudioReadError

    scipy.io.savemat(str(tmp_path / "babble.mat"), {"x": np.zeros(10), "y": np.zeros(10)})
    with pytest.raises(
        AudioReadError, match=r"babble\.mat: expected a variable named 'babble'.*\['x', 'y'\]"
    ):
        load_noise(tmp_path, "babble")
