"""Audio reading (SPHERE, RIFF, MAT), failure messages, resampling and writing."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import soundfile as sf
import torch

from vaenmf.data.audio import read_audio, read_sphere_header, resample, write_wav
from vaenmf.errors import AudioReadError, DataError


@pytest.fixture
def pcm() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.integers(-20000, 20000, size=16000).astype(np.int16)
    x[:2] = [-32768, 32767]  # the extremes must survive exactly
    return x


# --------------------------------------------------------------------------------------------------------
# SPHERE


def test_sphere_samples_exact(tmp_path, write_sphere, pcm):
    # A '.WAV' extension, as in TIMIT: the format must be told by the bytes, not the name.
    path = write_sphere(tmp_path / "SA1.WAV", pcm)
    wave, sr = read_audio(path)
    assert sr == 16000
    assert wave.dtype == torch.float32 and wave.shape == (pcm.size,)
    np.testing.assert_array_equal(wave.numpy(), pcm.astype(np.float32) / 32768.0)


def test_sphere_big_endian(tmp_path, write_sphere, pcm):
    path = write_sphere(tmp_path / "be.wav", pcm, big_endian=True)
    wave, _ = read_audio(path)
    np.testing.assert_array_equal(wave.numpy(), pcm.astype(np.float32) / 32768.0)


def test_sphere_header_parsed(tmp_path, write_sphere, pcm):
    header = read_sphere_header(write_sphere(tmp_path / "a.wav", pcm, sr=8000))
    assert header["sample_count"] == pcm.size
    assert header["sample_rate"] == 8000
    assert header["database_id"] == "TIMIT"
    assert header["header_bytes"] == 1024


def test_sphere_truncated_raises(tmp_path, write_sphere, pcm):
    path = write_sphere(tmp_path / "cut.wav", pcm[:8000], sample_count=pcm.size)
    with pytest.raises(AudioReadError, match="truncated SPHERE") as info:
        read_audio(path)
    assert "cut.wav" in str(info.value)


def test_sphere_header_only_raises(tmp_path, write_sphere, pcm):
    path = write_sphere(tmp_path / "hdr.wav", pcm)
    path.write_bytes(path.read_bytes()[:600])  # cut inside the header
    with pytest.raises(AudioReadError, match="hdr.wav"):
        read_audio(path)


# --------------------------------------------------------------------------------------------------------
# RIFF


def test_riff_pcm16_exact(tmp_path, write_riff, pcm):
    path = write_riff(tmp_path / "x.WAV", pcm.astype(np.float32) / 32768.0, sr=22050)
    wave, sr = read_audio(path)
    assert sr == 22050
    np.testing.assert_array_equal(wave.numpy(), pcm.astype(np.float32) / 32768.0)


def test_riff_truncated_raises(tmp_path, write_riff, pcm):
    path = write_riff(tmp_path / "riffcut.wav", pcm.astype(np.float32) / 32768.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut mid-data
    with pytest.raises(AudioReadError, match="truncated RIFF") as info:
        read_audio(path)
    assert "riffcut.wav" in str(info.value)


def test_riff_without_data_chunk_raises(tmp_path, write_riff, pcm):
    path = write_riff(tmp_path / "nodata.wav", pcm.astype(np.float32) / 32768.0)
    path.write_bytes(path.read_bytes()[:30])  # cut inside the fmt chunk
    with pytest.raises(AudioReadError, match="nodata.wav"):
        read_audio(path)


def test_riff_empty_raises(tmp_path, write_riff):
    path = write_riff(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioReadError, match="no samples"):
        read_audio(path)


def test_riff_nan_raises(tmp_path, write_riff):
    x = np.zeros(1000, dtype=np.float32)
    x[10] = np.nan
    path = write_riff(tmp_path / "nan.wav", x, subtype="FLOAT")
    with pytest.raises(AudioReadError, match="NaN"):
        read_audio(path)


def test_stereo_is_averaged(tmp_path, write_riff):
    rng = np.random.default_rng(1)
    x = (rng.uniform(-0.5, 0.5, size=(4000, 2))).astype(np.float32)
    path = write_riff(tmp_path / "st.wav", x, subtype="FLOAT")
    wave, _ = read_audio(path)
    np.testing.assert_allclose(wave.numpy(), x.mean(axis=1), atol=1e-7)


# --------------------------------------------------------------------------------------------------------
# Bad files


def test_garbage_raises(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(AudioReadError, match="unknown format") as info:
        read_audio(path)
    assert "garbage.wav" in str(info.value)


def test_missing_raises(tmp_path):
    with pytest.raises(AudioReadError, match="missing"):
        read_audio(tmp_path / "nope.wav")


def test_directory_raises(tmp_path):
    with pytest.raises(AudioReadError, match="directory"):
        read_audio(tmp_path)


# --------------------------------------------------------------------------------------------------------
# MAT (NOISEX-92 style)


def test_mat_noisex_style(tmp_path, pcm):
    path = tmp_path / "factory1.mat"
    scipy.io.savemat(str(path), {"factory1": pcm.astype(np.float64)[:, None]})
    wave, sr = read_audio(path)
    assert sr == 19980  # NOISEX-92 rate, since .mat stores none
    np.testing.assert_allclose(wave.numpy(), pcm / 32768.0, atol=1e-7)
    wave16, sr16 = read_audio(path, target_sr=16000)
    assert sr16 == 16000
    assert wave16.numel() == int(np.ceil(pcm.size * 800 / 999))


def test_mat_single_other_variable_and_rate(tmp_path):
    x = np.sin(np.arange(1000) / 10.0) * 0.5
    path = tmp_path / "noise.mat"
    scipy.io.savemat(str(path), {"sig": x})  # stored as (1, 1000): a row vector
    wave, sr = read_audio(path, mat_sample_rate=8000)
    assert sr == 8000
    np.testing.assert_allclose(wave.numpy(), x, atol=1e-7)  # already in [-1, 1]: not rescaled


def test_mat_ambiguous_raises(tmp_path):
    path = tmp_path / "babble.mat"
    scipy.io.savemat(str(path), {"a": np.ones(10), "b": np.ones(10)})
    with pytest.raises(AudioReadError, match="'babble'"):
        read_audio(path)


def test_mat_nan_raises(tmp_path):
    x = np.zeros(100)
    x[3] = np.nan
    path = tmp_path / "babble.mat"
    scipy.io.savemat(str(path), {"babble": x})
    with pytest.raises(AudioReadError, match="NaN"):
        read_audio(path)


def test_mat_garbage_raises(tmp_path):
    path = tmp_path / "factory1.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 20)
    with pytest.raises(AudioReadError, match="factory1.mat"):
        read_audio(path)


# --------------------------------------------------------------------------------------------------------
# Resampling and writing


def test_resample_19980_to_16000_keeps_frequency():
    sr_in, f = 19980, 1000.0
    t = np.arange(2 * sr_in) / sr_in
    x = torch.from_numpy((0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32))
    y = resample(x, sr_in, 16000)
    assert y.numel() == int(np.ceil(x.numel() * 16000 / sr_in)) == 32000
    spectrum = np.abs(np.fft.rfft(y.numpy() * np.hanning(y.numel())))
    peak_hz = np.argmax(spectrum) * 16000 / y.numel()
    assert abs(peak_hz - f) <= 16000 / y.numel()
    assert abs(float(y[1000:-1000].abs().max()) - 0.5) < 0.01  # passband gain ~1


def test_resample_noop_and_batched():
    x = torch.randn(2, 3000)
    assert resample(x, 16000, 16000) is x
    y = resample(x, 22050, 16000)
    assert y.shape == (2, int(np.ceil(3000 * 16000 / 22050)))


def test_resample_bad_rate():
    with pytest.raises(DataError, match="orig_sr"):
        resample(torch.zeros(10), 0, 16000)


def test_write_wav_round_trip_and_clipping(tmp_path):
    x = torch.linspace(-1.5, 1.5, 1000)
    path = write_wav(tmp_path / "out" / "enh.wav", x, 16000)
    y, sr = read_audio(path)
    assert sr == 16000
    assert float(y.max()) <= 1.0 and float(y.min()) >= -1.0  # clipped, not wrapped around
    inside = x.abs() < 0.99
    assert float((y[inside] - x[inside]).abs().max()) <= 1.0 / 32768 + 1e-7
    info = sf.info(str(path))
    assert info.subtype == "PCM_16"


def test_write_wav_rejects_nan(tmp_path):
    with pytest.raises(DataError, match="NaN"):
        write_wav(tmp_path / "bad.wav", torch.tensor([0.0, float("nan")]), 16000)


# --------------------------------------------------------------------------------------------------------
# Headers only (audio_info), sample rates that cannot be resampled, SPHERE writing


def _patch_riff_rate(path, rate):
    import struct

    raw = bytearray(path.read_bytes())
    raw[24:28] = struct.pack("<I", rate)
    raw[28:32] = struct.pack("<I", (2 * rate) & 0xFFFFFFFF)
    path.write_bytes(bytes(raw))
    return path


def test_audio_info_reads_headers_of_each_format(tmp_path, write_sphere, write_riff, pcm):
    from vaenmf.data.audio import audio_info

    sph = audio_info(write_sphere(tmp_path / "SA1.WAV", pcm, sr=16000))
    assert (sph.format, sph.sample_rate, sph.n_samples, sph.channels) == ("SPHERE", 16000, pcm.size, 1)
    riff = audio_info(write_riff(tmp_path / "b.wav", np.zeros((500, 2), np.float32), sr=22050))
    assert (riff.format, riff.sample_rate, riff.n_samples, riff.channels) == ("RIFF", 22050, 500, 2)
    path = tmp_path / "factory1.mat"
    scipy.io.savemat(str(path), {"factory1": pcm.astype(np.float64)[:, None]})
    mat = audio_info(path)
    assert (mat.format, mat.sample_rate, mat.n_samples, mat.variable) == ("MAT", 19980, pcm.size, "factory1")
    assert mat.seconds == pytest.approx(pcm.size / 19980)
    # The length at 16 kHz from the header alone is the length read_audio gives.
    for info in (sph, riff, mat):
        assert info.samples_at(16000) == read_audio(info.path, target_sr=16000)[0].numel()
    assert mat.samples_at(19980) == pcm.size


def test_audio_info_does_not_decode_samples(tmp_path, sparse_audio):
    from vaenmf.data.audio import audio_info

    # A 235 s NOISEX-length file whose samples are a hole: the header alone answers.
    info = audio_info(sparse_audio(tmp_path / "babble.wav", 235 * 19980, sr=19980, kind="riff"))
    assert info.n_samples == 235 * 19980 and info.sample_rate == 19980


def test_audio_info_names_truncated_empty_and_unknown_files(tmp_path, write_sphere, write_riff, pcm):
    from vaenmf.data.audio import audio_info

    cut = write_sphere(tmp_path / "cut.WAV", pcm[:100], sample_count=pcm.size)
    with pytest.raises(AudioReadError, match=r"cut\.WAV: truncated SPHERE"):
        audio_info(cut)
    riff = write_riff(tmp_path / "half.wav", pcm / 32768.0)
    riff.write_bytes(riff.read_bytes()[:5000])
    with pytest.raises(AudioReadError, match=r"half\.wav: truncated RIFF"):
        audio_info(riff)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioReadError, match=r"empty\.wav: the file is empty \(0 bytes\)"):
        audio_info(tmp_path / "empty.wav")
    with pytest.raises(AudioReadError, match=r"empty\.wav: the file is empty"):
        read_audio(tmp_path / "empty.wav")
    (tmp_path / "notes.wav").write_text("hello, not audio")
    with pytest.raises(AudioReadError, match=r"notes\.wav: unknown format"):
        audio_info(tmp_path / "notes.wav")
    zero = write_sphere(tmp_path / "zero.WAV", pcm[:1], sample_count=0)
    with pytest.raises(AudioReadError, match=r"zero\.WAV: the file holds no samples"):
        audio_info(zero)


def test_truncated_mat_is_named_although_whosmat_misses_it(tmp_path):
    from vaenmf.data.audio import audio_info

    for compress in (False, True):
        path = tmp_path / f"babble{int(compress)}.mat"
        scipy.io.savemat(
            str(path), {path.stem: np.random.default_rng(0).normal(size=(50000, 1))}, do_compression=compress
        )
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        assert scipy.io.whosmat(str(path))  # scipy alone does not notice
        with pytest.raises(AudioReadError, match=rf"{path.name}: truncated MAT file"):
            audio_info(path)
        with pytest.raises(AudioReadError, match=rf"{path.name}: truncated MAT file"):
            read_audio(path)


def test_mat_without_the_signal_variable(tmp_path):
    from vaenmf.data.audio import audio_info

    path = tmp_path / "factory1.mat"
    scipy.io.savemat(str(path), {"a": np.ones(10), "b": np.ones(10)})
    with pytest.raises(
        AudioReadError, match=r"factory1\.mat: expected a variable named 'factory1'.*\['a', 'b'\]"
    ):
        audio_info(path)
    scipy.io.savemat(str(path), {"factory1": np.array(["text"])})
    with pytest.raises(AudioReadError, match="not a numeric array"):
        audio_info(path)


@pytest.mark.parametrize("rate", [0, 1, 4_000_000_000])
def test_riff_rate_that_cannot_be_resampled(tmp_path, write_riff, rate):
    from vaenmf.data.audio import audio_info

    path = _patch_riff_rate(write_riff(tmp_path / "odd.wav", np.zeros(1000, np.float32)), rate)
    for read in (audio_info, read_audio):
        with pytest.raises(AudioReadError, match=rf"odd\.wav: sample rate {rate} Hz cannot be resampled"):
            read(path)


def test_sphere_rate_that_cannot_be_resampled(tmp_path, write_sphere, pcm):
    from vaenmf.data.audio import audio_info

    path = write_sphere(tmp_path / "SX1.WAV", pcm, sr=0)
    for read in (audio_info, read_audio):
        with pytest.raises(AudioReadError, match=r"SX1\.WAV: sample rate 0 Hz cannot be resampled"):
            read(path)


def test_coprime_rate_refused_before_allocating(tmp_path, write_riff):
    # 16001 -> 16000 Hz reduces to 16001:16000: a filter bank of GBs. Refused naming the file, not an OOM.
    path = write_riff(tmp_path / "odd.wav", np.zeros(1000, np.float32), sr=16001)
    assert read_audio(path)[1] == 16001  # readable as such
    with pytest.raises(AudioReadError, match=r"cannot resample .*odd\.wav from 16001 Hz to 16000 Hz"):
        read_audio(path, target_sr=16000)
    with pytest.raises(DataError, match="cannot resample a waveform from 16001 Hz"):
        resample(torch.zeros(10), 16001, 16000)
    # The rates corpora use are all fine.
    from vaenmf.data.audio import check_resample

    for sr in (8000, 11025, 16000, 19980, 22050, 44100, 48000, 96000):
        check_resample(sr, 16000)


def test_mat_sample_rate_that_cannot_be_used(tmp_path, pcm):
    path = tmp_path / "babble.mat"
    scipy.io.savemat(str(path), {"babble": pcm.astype(np.float64)})
    with pytest.raises(
        AudioReadError, match=r"babble\.mat: the assumed \.mat sample rate 0 Hz cannot be resampled"
    ):
        read_audio(path, target_sr=16000, mat_sample_rate=0)


def test_write_sphere_round_trip(tmp_path):
    from vaenmf.data.audio import audio_info, write_sphere

    x = np.sin(np.arange(4000) / 7.0).astype(np.float32) * 0.5
    path = write_sphere(tmp_path / "TIMIT" / "SA1.WAV", x, 16000, utterance_id="fcjf0_sa1")
    header = read_sphere_header(path)
    assert (
        header["header_bytes"] == 1024 and header["sample_count"] == 4000 and header["sample_rate"] == 16000
    )
    assert header["utterance_id"] == "fcjf0_sa1" and header["sample_byte_format"] == "01"
    assert path.read_bytes().startswith(b"NIST_1A\n   1024\n") and path.stat().st_size == 1024 + 2 * 4000
    assert audio_info(path).format == "SPHERE"
    wave, sr = read_audio(path)
    np.testing.assert_allclose(wave.numpy(), x, atol=1.5 / 32768)
    with pytest.raises(DataError, match="NaN"):
        write_sphere(tmp_path / "bad.WAV", np.array([np.nan]), 16000)


def test_header_reading_does_not_import_torch(repo_root):
    import subprocess
    import sys

    code = (
        "import sys; import vaenmf.data.audio, vaenmf.data.noisex, vaenmf.data.timit, vaenmf.data.ninapro, "
        "vaenmf.data.check, vaenmf.data.cli; "
        "print('torch' in sys.modules)"
    )
    env = {"PYTHONPATH": str(repo_root / "src"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"
