"""TIMIT indexing and the paper's utterance selections."""

from __future__ import annotations

import numpy as np
import pytest

from vaenmf.data.timit import (
    CORE_TEST_SPEAKERS,
    core_test_set,
    dictionary_pool,
    find_timit_root,
    index_timit,
    speakers_of,
)
from vaenmf.errors import CorpusLayoutError


def test_core_test_speakers():
    assert len(CORE_TEST_SPEAKERS) == len(set(CORE_TEST_SPEAKERS)) == 24
    assert sum(s.startswith("F") for s in CORE_TEST_SPEAKERS) == 8


@pytest.fixture
def ldc_tree(tmp_path, write_sphere, write_riff):
    """A tiny LDC-style tree: mixed case, SPHERE and RIFF, a .WAV.wav duplicate, non-audio files."""
    x = (np.random.default_rng(0).uniform(-0.1, 0.1, 1000) * 32768).astype(np.int16)
    base = tmp_path / "TIMIT"
    for split, dr, spk in [
        ("TRAIN", "DR1", "FCJF0"),
        ("TRAIN", "DR2", "MAEO0"),
        ("TEST", "DR1", "MDAB0"),
        ("TEST", "DR1", "MREB0"),
    ]:
        for utt in ("SA1", "SI648", "SX38"):
            write_sphere(base / split / dr / spk / f"{utt}.WAV", x)
            (base / split / dr / spk / f"{utt}.PHN").write_text("0 1000 h#\n")
    write_riff(base / "TRAIN" / "DR1" / "FCJF0" / "SI648.WAV.wav", x / 32768.0)
    low = tmp_path / "TIMIT" / "TEST" / "dr2" / "fpas0"  # lower-case names inside
    for utt in ("si1", "sx2"):
        write_riff(low / f"{utt}.wav", x / 32768.0)
    return tmp_path


def test_index_ldc_tree(ldc_tree):
    utts = index_timit(ldc_tree)
    assert find_timit_root(ldc_tree).name == "TIMIT"
    assert len(utts) == 4 * 3 + 2
    assert {u.split for u in utts} == {"TRAIN", "TEST"}
    u = next(u for u in utts if u.speaker == "FPAS0")
    assert (u.split, u.dialect, u.utt, u.kind) == ("TEST", "DR2", "SI1", "SI")
    assert u.name == "DR2_FPAS0_SI1"
    # The RIFF duplicate SI648.WAV.wav is dropped in favour of SI648.WAV.
    fcjf = [u for u in utts if u.speaker == "FCJF0"]
    assert [u.path.name for u in fcjf] == ["SA1.WAV", "SI648.WAV", "SX38.WAV"]


def test_selections(ldc_tree):
    utts = index_timit(ldc_tree)
    pool = dictionary_pool(utts)
    assert {u.speaker for u in pool} == {"FCJF0", "MAEO0"}
    assert all(u.kind in ("SI", "SX") for u in pool)
    core = core_test_set(utts)
    assert speakers_of(core) == ["FPAS0", "MDAB0"]  # MREB0 is not a core test speaker
    assert len(core) == 4


def test_lower_case_tree_below_data(tmp_path, write_riff):
    write_riff(tmp_path / "timit" / "data" / "train" / "dr3" / "mabc0" / "sx1.wav", np.zeros(600, np.float32))
    utts = index_timit(tmp_path)
    assert [(u.split, u.dialect, u.speaker, u.utt) for u in utts] == [("TRAIN", "DR3", "MABC0", "SX1")]


def test_not_timit(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(CorpusLayoutError, match="does not look like TIMIT.*stuff"):
        index_timit(tmp_path)
    with pytest.raises(CorpusLayoutError, match="does not exist"):
        index_timit(tmp_path / "missing")
    (tmp_path / "TRAIN" / "DR1" / "FCJF0").mkdir(parents=True)
    with pytest.raises(CorpusLayoutError, match="no TIMIT utterances"):
        index_timit(tmp_path)


@pytest.mark.realdata
def test_index_nltk_sample(shared_data):
    utts = index_timit(shared_data / "timit_sample")
    assert len(utts) == 160
    assert len(speakers_of(utts)) == 16
    assert all(u.split is None for u in utts)
    assert len(dictionary_pool(utts)) == 128  # 3 SI + 5 SX per speaker
    assert {u.dialect for u in utts} == {f"DR{i}" for i in range(1, 9)}
    assert core_test_set(utts) == []


@pytest.mark.realdata
def test_read_timit_sample_sphere(shared_data):
    from vaenmf.data.audio import read_audio, read_sphere_header

    utts = index_timit(shared_data / "timit_sample")
    for u in utts[::40]:
        assert u.path.read_bytes()[:7] == b"NIST_1A"
        header = read_sphere_header(u.path)
        wave, sr = read_audio(u.path)
        assert sr == 16000 and wave.numel() == header["sample_count"]
        # 16-bit PCM exactly: the header's extremes come back at int16 scale.
        assert float(wave.max()) * 32768 == header["sample_max"]
        assert float(wave.min()) * 32768 == header["sample_min"]
        # The phone transcription ends (h#) at about the last sample.
        phn_end = int(u.path.with_suffix(".phn").read_text().split()[-2])
        assert abs(phn_end - wave.numel()) < 1600
