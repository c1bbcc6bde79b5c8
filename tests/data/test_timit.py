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


# --------------------------------------------------------------------------------------------------------
# The development set (Kaldi's egs/timit/s5/conf/dev_spk.list)

# Verbatim from kaldi-asr/kaldi egs/timit/s5/conf/dev_spk.list, in its order.
KALDI_DEV_SPK_LIST = [
    "faks0",
    "fdac1",
    "fjem0",
    "mgwt0",
    "mjar0",
    "mmdb1",
    "mmdm2",
    "mpdf0",
    "fcmh0",
    "fkms0",
    "mbdg0",
    "mbwm0",
    "mcsh0",
    "fadg0",
    "fdms0",
    "fedw0",
    "mgjf0",
    "mglb0",
    "mrtk0",
    "mtaa0",
    "mtdt0",
    "mthc0",
    "mwjg0",
    "fnmr0",
    "frew0",
    "fsem0",
    "mbns0",
    "mmjr0",
    "mdls0",
    "mdlf0",
    "mdvc0",
    "mers0",
    "fmah0",
    "fdrw0",
    "mrcs0",
    "mrjm4",
    "fcal1",
    "mmwh0",
    "fjsj0",
    "majc0",
    "mjsw0",
    "mreb0",
    "fgjd0",
    "fjmg0",
    "mroa0",
    "mteb0",
    "mjfc0",
    "mrjr0",
    "fmml0",
    "mrws1",
]
# TIMIT TEST speakers per dialect region (LDC documentation; 168 in all).
TEST_PER_DIALECT = {"DR1": 11, "DR2": 26, "DR3": 26, "DR4": 32, "DR5": 28, "DR6": 11, "DR7": 23, "DR8": 11}


def test_dev_speakers_are_kaldis_50_disjoint_from_the_core_test_set():
    from vaenmf.data.timit import CORE_TEST_SPEAKERS_BY_DIALECT, DEV_SPEAKERS, DEV_SPEAKERS_BY_DIALECT

    assert len(DEV_SPEAKERS) == len(set(DEV_SPEAKERS)) == 50
    assert sorted(DEV_SPEAKERS) == sorted(s.upper() for s in KALDI_DEV_SPK_LIST)
    assert not set(DEV_SPEAKERS) & set(CORE_TEST_SPEAKERS)
    assert sum(s.startswith("F") for s in DEV_SPEAKERS) == 18
    # Core + dev speakers of a dialect region fit among its TEST speakers.
    for dr, n in TEST_PER_DIALECT.items():
        assert len(CORE_TEST_SPEAKERS_BY_DIALECT[dr]) + len(DEV_SPEAKERS_BY_DIALECT[dr]) <= n


def test_development_set_takes_si_sx_of_dev_speakers_under_test_only(tmp_path, write_sphere):
    from vaenmf.data.timit import development_set

    x = np.zeros(400, np.int16)
    for split, dr, spk in [("TEST", "DR1", "FAKS0"), ("TEST", "DR4", "FADG0"), ("TEST", "DR1", "MDAB0")]:
        for utt in ("SA1", "SI943", "SX43"):
            write_sphere(tmp_path / "TIMIT" / split / dr / spk / f"{utt}.WAV", x)
    # A dev speaker's name under TRAIN (a mislabelled copy) is not the dev set.
    write_sphere(tmp_path / "TIMIT" / "TRAIN" / "DR2" / "MGWT0" / "SI1.WAV", x)
    dev = development_set(index_timit(tmp_path))
    assert sorted((u.speaker, u.utt) for u in dev) == [
        ("FADG0", "SI943"),
        ("FADG0", "SX43"),
        ("FAKS0", "SI943"),
        ("FAKS0", "SX43"),
    ]


# --------------------------------------------------------------------------------------------------------
# What a scan reports, per layout; bad trees


def test_scan_reports_each_layout(tmp_path, write_sphere, write_riff):
    from vaenmf.data.timit import scan_timit

    x = np.zeros(400, np.int16)
    upper = tmp_path / "upper"
    write_sphere(upper / "TIMIT" / "TRAIN" / "DR1" / "FCJF0" / "SA1.WAV", x)
    assert scan_timit(upper).layout == "LDC tree, upper case"
    lower = tmp_path / "lower"
    write_riff(lower / "timit" / "train" / "dr1" / "fcjf0" / "sa1.wav", x / 32768.0)
    assert scan_timit(lower).layout == "LDC tree, lower case"
    kaggle = tmp_path / "kaggle"
    spk = kaggle / "data" / "TRAIN" / "DR1" / "FCJF0"
    write_sphere(spk / "SA1.WAV", x)
    write_riff(spk / "SA1.WAV.wav", x / 32768.0)
    (spk / "SA1.PHN").write_text("0 400 h#\n")
    (spk / "notes.doc").write_text("?")
    scan = scan_timit(kaggle)
    assert scan.layout == "Kaggle copy: LDC tree below data/, upper case, with .WAV.wav RIFF duplicates"
    assert [p.name for p in scan.duplicates] == ["SA1.WAV.wav"]
    assert [p.name for p in scan.unexpected] == ["notes.doc"]  # the .PHN companion is expected
    sample = tmp_path / "sample"
    write_sphere(sample / "dr1-fvmh0" / "sa1.wav", x)
    scan = scan_timit(sample)
    assert scan.layout.startswith("NLTK sample") and not scan.has_split


def test_speaker_folder_without_audio_is_refused_naming_it(tmp_path, write_sphere):
    x = np.zeros(400, np.int16)
    write_sphere(tmp_path / "TIMIT" / "TRAIN" / "DR1" / "FCJF0" / "SA1.WAV", x)
    empty = tmp_path / "TIMIT" / "TRAIN" / "DR1" / "MDPK0"
    empty.mkdir()
    (empty / "SA1.PHN").write_text("0 1 h#\n")  # transcriptions but no audio: a partial copy
    with pytest.raises(
        CorpusLayoutError, match=r"speaker folder .*TRAIN/DR1/MDPK0 holds no audio: expected <UTT>\.WAV"
    ):
        index_timit(tmp_path)


def test_root_that_is_no_known_layout_names_what_is_there(tmp_path):
    (tmp_path / "corpus" / "wavs").mkdir(parents=True)
    (tmp_path / "corpus" / "a.wav").write_bytes(b"RIFF")
    with pytest.raises(
        CorpusLayoutError, match=r"corpus does not look like TIMIT: expected .*found \['a\.wav', 'wavs'\]"
    ):
        index_timit(tmp_path / "corpus")
