"""Fixtures for the data tests: writers for NIST SPHERE and RIFF files with known content, and a small generated
TIMIT + NOISEX-92 tree (``fake_corpora``)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import soundfile as sf

from vaenmf.data.synthetic import make_noise, make_speakers, synth_utterance


def _sphere_bytes(
    samples: np.ndarray, sr: int, sample_count: int | None = None, big_endian: bool = False
) -> bytes:
    """A TIMIT-style NIST_1A file: 1024-byte ASCII header + 16-bit PCM."""
    samples = np.asarray(samples, dtype=np.int16)
    fields = [
        "database_id -s5 TIMIT",
        "database_version -s3 1.0",
        "utterance_id -s8 test_sa1",
        "channel_count -i 1",
        f"sample_count -i {len(samples) if sample_count is None else sample_count}",
        f"sample_rate -i {sr}",
        f"sample_min -i {int(samples.min())}",
        f"sample_max -i {int(samples.max())}",
        "sample_n_bytes -i 2",
        f"sample_byte_format -s2 {'10' if big_endian else '01'}",
        "sample_sig_bits -i 16",
        "end_head",
    ]
    header = ("NIST_1A\n   1024\n" + "\n".join(fields) + "\n").encode("ascii")
    header = header + b" " * (1024 - len(header))
    assert len(header) == 1024
    return header + samples.astype(">i2" if big_endian else "<i2").tobytes()


@pytest.fixture
def write_sphere() -> Callable[..., Path]:
    """``write_sphere(path, int16_samples, sr=16000, sample_count=None, big_endian=False) -> path``."""

    def write(
        path: Path,
        samples: np.ndarray,
        sr: int = 16000,
        sample_count: int | None = None,
        big_endian: bool = False,
    ) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_sphere_bytes(samples, sr, sample_count, big_endian))
        return path

    return write


@pytest.fixture
def write_riff() -> Callable[..., Path]:
    """``write_riff(path, float_samples, sr=16000, subtype="PCM_16") -> path``."""

    def write(path: Path, samples: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.asarray(samples), sr, subtype=subtype, format="WAV")
        return path

    return write


def _riff_header(n_samples: int, sr: int) -> bytes:
    """A 44-byte RIFF/WAVE PCM16 mono header declaring ``n_samples`` samples."""
    data_bytes = 2 * n_samples
    fmt = struct.pack("<HHIIHH", 1, 1, sr, 2 * sr, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


@pytest.fixture
def sparse_audio() -> Callable[..., Path]:
    """``sparse_audio(path, n_samples, sr=16000, kind="sphere"|"riff") -> path``: a silent file of any length.

    The samples are a hole in the file (sparse: no disk space, written instantly), so header-level fixtures of the
    real corpora's durations (235 s noises, thousands of utterances) stay cheap. The header is exact.
    """

    def write(path: Path, n_samples: int, sr: int = 16000, kind: str = "sphere") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "sphere":
            header = _sphere_bytes(np.zeros(1, np.int16), sr, sample_count=n_samples)[:1024]
        else:
            header = _riff_header(n_samples, sr)
        with path.open("wb") as f:
            f.write(header)
            f.truncate(len(header) + 2 * n_samples)
        return path

    return write


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
    # Long enough that 10% of each (the validation part) holds a 1.6 s utterance.
    noise = make_noise("factory", 30.0, seed=0).numpy() * 32767  # int16 scale, as NOISEX-92's .mat files
    (tmp_path / "noisex92").mkdir()
    scipy.io.savemat(
        str(tmp_path / "noisex92" / "factory1.mat"), {"factory1": noise.astype(np.float64)[:, None]}
    )
    write_riff(tmp_path / "noisex92" / "babble.wav", make_noise("babble", 25.0, seed=0).numpy())
    return tmp_path
