"""`vaenmf-data check`: generated fixture trees of every layout, every kind of bad file, and the real excerpts.

The fixture trees are headers over sparse files (no samples on disk), so trees of the protocol's sizes (the 24 + 50
TEST speakers, 235 s noises) take milliseconds to write; the check reads headers only, so it cannot tell.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from vaenmf.data.check import JOB_EXPERIMENTS, Protocol, check_corpora
from vaenmf.data.cli import main
from vaenmf.data.timit import CORE_TEST_SPEAKERS_BY_DIALECT, DEV_SPEAKERS_BY_DIALECT

UTTS = ("SA1", "SA2", "SI1", "SI2", "SI3", "SX1", "SX2", "SX3", "SX4", "SX5")
TRAIN = [("DR1", "FCJF0"), ("DR1", "MDPK0"), ("DR2", "FAEM0"), ("DR2", "MARC0")]


def _timit(root: Path, sparse_audio, case=str.upper, top="TIMIT", train_seconds=10.0, skip=()):
    """An LDC tree: 4 TRAIN speakers of 10 s utterances; the core test and dev speakers, 3 s utterances."""
    base = root / top if top else root
    speakers = [("TRAIN", dr, spk) for dr, spk in TRAIN]
    for by_dialect in (CORE_TEST_SPEAKERS_BY_DIALECT, DEV_SPEAKERS_BY_DIALECT):
        speakers += [("TEST", dr, spk) for dr, group in by_dialect.items() for spk in group]
    for split, dr, spk in speakers:
        if spk in skip:
            continue
        seconds = train_seconds if split == "TRAIN" else 3.0
        for utt in UTTS:
            sparse_audio(
                base / case(split) / case(dr) / case(spk) / f"{case(utt)}.{case('wav')}", int(seconds * 16000)
            )
    return root


def _db1(root: Path, subjects=range(1, 28), exercise=1, movement=None, repetition=None):
    """DB1 files of every movement of the exercise x 10 repetitions (5 samples each, 2 of rest)."""
    from vaenmf.data.ninapro import EXERCISE_MOVEMENTS

    n_move = EXERCISE_MOVEMENTS[exercise]
    block = np.array([1] * 5 + [0] * 2)
    mov = np.concatenate([np.concatenate([block * m for _ in range(10)]) for m in range(1, n_move + 1)])
    rep = np.concatenate([np.concatenate([block * r for r in range(1, 11)]) for _ in range(n_move)])
    mov = mov if movement is None else movement
    rep = rep if repetition is None else repetition
    for s in subjects:
        path = root / f"s{s}" / f"S{s}_A1_E{exercise}.mat"
        path.parent.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(
            path,
            {
                "emg": np.full((mov.size, 10), 0.01),
                "stimulus": mov.reshape(-1, 1).astype(np.uint8),
                "restimulus": mov.reshape(-1, 1).astype(np.float64),
                "repetition": rep.reshape(-1, 1).astype(np.uint8),
                "rerepetition": rep.reshape(-1, 1).astype(np.float64),
                "glove": np.zeros((mov.size, 22)),
                "subject": np.array([[s]], np.uint8),
                "exercise": np.array([[exercise]], np.uint8),
            },
        )
    return root


@pytest.fixture
def corpora(tmp_path, sparse_audio):
    """DATA_ROOT with everything the protocol needs: exit status 0."""
    _timit(tmp_path / "timit", sparse_audio)
    for name in ("babble", "factory1"):
        sparse_audio(tmp_path / "noisex92" / f"{name}.wav", 235 * 19980, sr=19980, kind="riff")
    _db1(tmp_path / "ninapro_db1")
    return tmp_path


def _messages(report, level, experiment=None):
    return [
        f.message
        for f in report.findings
        if f.level == level and (experiment is None or experiment in f.experiments)
    ]


def test_complete_corpora_pass(corpora, capsys):
    report = check_corpora(corpora)
    assert _messages(report, "error") == [] and _messages(report, "warning") == []
    assert report.exit_status == 0
    assert [report.experiment(n)["status"] for n in ("table1", "table2", "figure2")] == ["ok"] * 3
    t = report.corpora["timit"]
    assert t["layout"] == "LDC tree, upper case"
    assert t["core_test"]["complete"] and t["core_test"]["utterances"] == 192
    assert t["dev"]["complete"] and t["dev"]["utterances"] == 400
    assert t["splits"]["TRAIN"] == {
        "speakers": 4,
        "si_sx_utterances": 32,
        "sa_utterances": 8,
        "si_sx_hours": 0.089,
    }
    assert t["splits"]["TEST"]["speakers"] == 74 and t["splits"]["TEST"]["sa_utterances"] == 148
    assert t["formats"] == {"SPHERE": 780} and t["sample_rates"] == {"16000": 780}
    noise = {e["path"]: e for e in report.corpora["noisex92"]["files"]}
    # 235 s at 19.98 kHz -> 3760000 samples at 16 kHz; first 60%: 2256000 samples, 1 + 2256000 // 128 frames.
    assert noise["babble.wav"]["train_frames"] == 17626 and noise["babble.wav"]["used_for"] == ["babble"]
    # Then 10% (376000 samples) for validation and the last 30% (1128000) for test.
    parts = [noise["babble.wav"][f"{p}_seconds"] for p in ("train", "validation", "test")]
    assert parts == [141.0, 23.5, 70.5]
    db1 = report.corpora["ninapro_db1"]["subjects"]
    assert len(db1) == 27 and db1["27"]["E1"]["movements"] == 12
    assert set(db1["1"]["E1"]["repetitions"].values()) == {10}
    assert main(["check", str(corpora)]) == 0
    out = capsys.readouterr().out
    assert (
        "OK (paper's protocol)" in out
        and "core test set: 24/24 speakers, 192/192 utterances, complete" in out
    )


def test_data_root_from_the_environment_and_json(corpora, capsys, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", str(corpora))
    assert main(["check", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["data_root"] == str(corpora) and doc["exit_status"] == 0
    assert [e["status"] for e in doc["experiments"]] == ["ok", "ok", "ok"]
    assert doc["corpora"]["timit"]["core_test"]["missing_speakers"] == []


def test_missing_core_test_speaker_is_an_error_naming_it(tmp_path, sparse_audio, corpora):
    import shutil

    shutil.rmtree(corpora / "timit" / "TIMIT" / "TEST" / "DR3" / "MJMP0")
    report = check_corpora(corpora)
    assert report.exit_status == 2
    for table in ("table1", "table2"):
        exp = report.experiment(table)
        assert exp["status"] == "cannot run"
        assert any(
            "core test set incomplete: 184 of 192" in m and "TEST/DR3/MJMP0" in m for m in exp["errors"]
        )
    assert report.experiment("figure2")["status"] == "ok"
    assert report.corpora["timit"]["core_test"]["missing_speakers"] == ["TEST/DR3/MJMP0"]


def test_core_speaker_with_fewer_sentences_and_missing_dev_speaker(corpora):
    (corpora / "timit" / "TIMIT" / "TEST" / "DR1" / "MDAB0" / "SX5.WAV").unlink()
    import shutil

    shutil.rmtree(corpora / "timit" / "TIMIT" / "TEST" / "DR7" / "MRJM4")
    report = check_corpora(corpora)
    errors = _messages(report, "error", "table1")
    assert len(errors) == 1 and "TEST/DR1/MDAB0 (7 of 8)" in errors[0]
    warnings = _messages(report, "warning", "table1")
    assert any("development set" in w and "TEST/DR7/MRJM4" in w and "392 of 400" in w for w in warnings)


def test_dev_set_alone_missing_is_a_warning_exit_1(corpora):
    import shutil

    shutil.rmtree(corpora / "timit" / "TIMIT" / "TEST" / "DR4" / "FADG0")
    report = check_corpora(corpora)
    assert report.exit_status == 1
    assert report.experiment("table1")["status"] == "deviates"


def test_short_noise_gives_1501_frames_a_warning(corpora, sparse_audio):
    # The 20 s excerpts at 22.05 kHz: 320000 samples at 16 kHz, first 60% -> 1 + 192000 // 128 = 1501 frames.
    sparse_audio(corpora / "noisex92" / "babble.wav", 20 * 22050, sr=22050, kind="riff")
    report = check_corpora(corpora)
    assert report.exit_status == 1
    t1 = _messages(report, "warning", "table1")
    t2 = _messages(report, "warning", "table2")
    assert any("babble" in m and "1501 noise dictionary frames of the 9000 asked" in m for m in t1)
    assert any("babble" in m and "1501 noise dictionary frames of the 4500 asked" in m for m in t2)
    assert report.experiment("table1")["status"] == "deviates"


def test_noise_parts_agree_with_the_data_module(corpora, sparse_audio):
    """The check's training/validation/test seconds are the sample ranges SpeechDataModule cuts."""
    from vaenmf.data.speech import noise_split_points

    for n in (320001, 3760000, 1234567):
        sparse_audio(corpora / "noisex92" / "factory1.wav", n, sr=16000, kind="riff")
        entry = {e["path"]: e for e in check_corpora(corpora).corpora["noisex92"]["files"]}["factory1.wav"]
        a, b = noise_split_points(n, 0.6, 0.1)
        assert [entry[f"{p}_seconds"] for p in ("train", "validation", "test")] == [
            round(a / 16000, 3),
            round((b - a) / 16000, 3),
            round((n - b) / 16000, 3),
        ]


def test_validation_part_shorter_than_a_dev_utterance_is_a_warning(corpora, sparse_audio):
    # 25 s: a 2.5 s validation part, shorter than the 3 s development-set utterances; the test part (7.5 s) fits.
    sparse_audio(corpora / "noisex92" / "factory1.wav", 25 * 16000, sr=16000, kind="riff")
    report = check_corpora(corpora)
    assert any(
        "factory1: its validation part (2.5 s) is shorter than the longest validation utterance (3.0 s)" in m
        and "eval_split=validation" in m
        for m in _messages(report, "warning", "table1")
    )
    assert not any("factory1: its" in m for m in _messages(report, "error", "table1"))


def test_noise_too_short_for_the_rank_or_the_utterances_is_an_error(corpora, sparse_audio):
    # 0.3 s: 31 training frames (< rank 40) and a 0.12 s test part (< the 3 s test utterances).
    sparse_audio(corpora / "noisex92" / "factory1.wav", int(0.3 * 16000), sr=16000, kind="riff")
    report = check_corpora(corpora)
    errors = _messages(report, "error", "table1")
    assert any("factory1" in m and "fewer than the rank 40 noise dictionary needs" in m for m in errors)
    assert any(
        "factory1: its test part" in m and "shorter than the longest test utterance (3.0 s)" in m
        for m in errors
    )
    assert report.exit_status == 2


def test_missing_noise_and_low_rate_noise(corpora, sparse_audio):
    (corpora / "noisex92" / "factory1.wav").unlink()
    sparse_audio(corpora / "noisex92" / "sub" / "babble.wav", 235 * 8000, sr=8000, kind="riff")
    (corpora / "noisex92" / "babble.wav").unlink()
    report = check_corpora(corpora)
    assert any("no NOISEX-92 factory1 noise ('factory')" in m for m in _messages(report, "error", "table2"))
    assert any("sub/babble.wav is at 8000 Hz" in m for m in _messages(report, "warning", "table1"))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("truncate", "truncated SPHERE file"),
        ("empty", "the file is empty (0 bytes)"),
        ("garbage", "unknown format"),
        ("rate0", "sample rate 0 Hz cannot be resampled"),
        ("coprime", "cannot resample"),
        ("shorten", "compressed with 'pcm,embedded-shorten-v2.00', which soundfile cannot decode"),
    ],
)
def test_broken_files_are_named_with_the_reason(corpora, write_sphere, damage, reason):
    victim = corpora / "timit" / "TIMIT" / "TEST" / "DR5" / "FNLP0" / "SX2.WAV"
    if damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:2000])
    elif damage == "empty":
        victim.write_bytes(b"")
    elif damage == "garbage":
        victim.write_bytes(b"\x00\x01junk" * 100)
    elif damage == "rate0":
        write_sphere(victim, np.zeros(100, np.int16), sr=0)
    elif damage == "coprime":
        write_sphere(victim, np.zeros(100, np.int16), sr=16001)
    else:  # LDC's original CD-ROM files are shorten-compressed; they need sph2pipe first
        raw = victim.read_bytes()
        head = raw[:1024].replace(b"end_head", b"sample_coding -s26 pcm,embedded-shorten-v2.00\nend_head", 1)
        victim.write_bytes(head[:1024] + raw[1024:])
    report = check_corpora(corpora)
    errors = _messages(report, "error", "table1")
    assert any(m.startswith(str(victim)) and reason in m for m in errors), errors
    assert report.exit_status == 2


def test_broken_file_no_job_reads_is_a_warning(corpora):
    victim = corpora / "timit" / "TIMIT" / "TEST" / "DR5" / "FNLP0" / "SA1.WAV"
    victim.write_bytes(b"")
    report = check_corpora(corpora)
    assert report.exit_status == 1
    assert report.experiment("table1")["status"] == "ok"
    (finding,) = [f for f in report.findings if f.level == "warning"]
    assert finding.path == str(victim) and "no experiment reads it: an SA sentence" in finding.message


def test_broken_noise_and_db1_files(corpora):
    (corpora / "noisex92" / "babble.wav").write_bytes(b"RIFF\x00\x00")
    db1 = corpora / "ninapro_db1" / "s3" / "S3_A1_E1.mat"
    db1.write_bytes(db1.read_bytes()[:300])
    report = check_corpora(corpora)
    assert any("babble.wav: malformed RIFF" in m for m in _messages(report, "error", "table1"))
    assert any(str(db1) in m and "truncated MAT file" in m for m in _messages(report, "error", "figure2"))


def test_speaker_folder_without_audio_and_unexpected_files(corpora):
    empty = corpora / "timit" / "TIMIT" / "TRAIN" / "DR1" / "MDPK0"
    for f in empty.iterdir():
        f.unlink()
    (corpora / "timit" / "TIMIT" / "TRAIN" / "DR1" / "FCJF0" / "SI1.WAV.bak").write_text("old")
    (corpora / "timit" / "TIMIT" / "TRAIN" / "DR9").mkdir()
    report = check_corpora(corpora)
    assert any(f"speaker folder {empty} holds no audio" in m for m in _messages(report, "error", "table1"))
    notes = _messages(report, "note")
    assert any("TRAIN/DR1/FCJF0/SI1.WAV.bak: not a TIMIT name" in m for m in notes)
    assert any("TRAIN/DR9: not a TIMIT name" in m for m in notes)


@pytest.mark.parametrize("layout", ["lower", "kaggle"])
def test_other_layouts_pass_too(tmp_path, sparse_audio, layout):
    if layout == "lower":
        _timit(tmp_path / "timit", sparse_audio, case=str.lower, top="timit")
        expected = "LDC tree, lower case"
    else:
        # The Kaggle copy: data/ on top, a RIFF .WAV.wav beside every SPHERE .WAV (skipped).
        _timit(tmp_path / "timit" / "data", sparse_audio, top=None)
        for wav in list((tmp_path / "timit").rglob("*.WAV")):
            sparse_audio(wav.with_name(wav.name + ".wav"), 16000, kind="riff")
        expected = "Kaggle copy: LDC tree below data/, upper case, with .WAV.wav RIFF duplicates"
    report = check_corpora(tmp_path / "nowhere", timit=tmp_path / "timit")
    t = report.corpora["timit"]
    assert t["layout"] == expected
    assert t["core_test"]["complete"] and t["dev"]["complete"]
    assert t["formats"] == {"SPHERE": 780}
    assert not [m for m in _messages(report, "error") if "TIMIT" in m or "core" in m]


def test_nltk_sample_layout_has_no_core_test_set(tmp_path, sparse_audio):
    for spk in ("dr1-fvmh0", "dr1-mcpm0", "dr2-faem0", "dr2-marc0"):
        for utt in UTTS:
            sparse_audio(tmp_path / "sample" / spk / f"{utt.lower()}.wav", 3 * 16000)
    report = check_corpora(None, timit=tmp_path / "sample")
    t = report.corpora["timit"]
    assert t["layout"].startswith("NLTK sample") and t["splits"]["(no split)"]["si_sx_utterances"] == 32
    assert any(
        "no TRAIN/TEST split" in m and "no core test set" in m for m in _messages(report, "error", "table1")
    )


def test_missing_and_unknown_roots(tmp_path):
    report = check_corpora(tmp_path / "absent")
    errors = _messages(report, "error")
    assert any(f"DATA_ROOT {tmp_path / 'absent'} does not exist" in m for m in errors)
    assert any(f"TIMIT folder {tmp_path / 'absent' / 'timit'} does not exist" in m for m in errors)
    assert any("NOISEX-92 folder" in m and "does not exist" in m for m in errors)
    assert any("Ninapro DB1 folder" in m and "does not exist" in m for m in errors)
    (tmp_path / "timit" / "stuff").mkdir(parents=True)
    (tmp_path / "timit_sample" / "dr1-fvmh0").mkdir(parents=True)
    (tmp_path / "ninapro_db1").mkdir()
    report = check_corpora(tmp_path)
    errors = _messages(report, "error")
    assert any(
        "does not look like TIMIT" in m and f"hint: {tmp_path / 'timit_sample'} looks like TIMIT" in m
        for m in errors
    )
    assert any("no DB1 files in" in m for m in errors)
    report = check_corpora(None)
    assert any("TIMIT not given: set DATA_ROOT" in m for m in _messages(report, "error"))


def test_db1_missing_subjects_and_exercise_not_on_disk(corpora):
    import shutil

    shutil.rmtree(corpora / "ninapro_db1" / "s27")
    report = check_corpora(corpora)
    (error,) = _messages(report, "error", "figure2")
    assert "1 of the 27 DB1 files Figure 2 reads are missing" in error and "S27_A1_E1.mat" in error
    report = check_corpora(corpora, protocol=Protocol(db1_subjects=(1, 2), db1_exercises=(1, 2)))
    (error,) = _messages(report, "error", "figure2")
    assert (
        "S1_A1_E2.mat, S2_A1_E2.mat" in error
        and "exercise 2 is asked but not on disk (found exercise 1)" in error
    )


@pytest.mark.parametrize(
    ("variable", "bad", "text"),
    [
        ("restimulus", 99, "'restimulus' has values outside exercise 1's movements 1-12 (0 = rest): 99"),
        ("restimulus", -1, "'restimulus' has values outside exercise 1's movements 1-12 (0 = rest): -1"),
        ("rerepetition", 42, "'rerepetition' has values outside repetitions 1-10 (0 = rest): 42"),
    ],
)
def test_db1_labels_out_of_range(tmp_path, variable, bad, text):
    _db1(tmp_path)  # a good file to get the labels
    labels = scipy.io.loadmat(tmp_path / "s1" / "S1_A1_E1.mat")
    values = {
        "movement": labels["restimulus"].ravel().copy(),
        "repetition": labels["rerepetition"].ravel().copy(),
    }
    key = "movement" if variable == "restimulus" else "repetition"
    values[key][values[key] == 3] = bad
    _db1(tmp_path, subjects=[5], **values)
    report = check_corpora(None, ninapro=tmp_path)
    (error,) = _messages(report, "error", "figure2")
    assert error.startswith(str(tmp_path / "s5" / "S5_A1_E1.mat")) and text in error


def test_db1_missing_movement_and_repetitions(tmp_path):
    _db1(tmp_path)
    labels = scipy.io.loadmat(tmp_path / "s1" / "S1_A1_E1.mat")
    mov, rep = labels["restimulus"].ravel().copy(), labels["rerepetition"].ravel().copy()
    mov[mov == 12] = 0  # movement 12 absent: a deviation
    rep[(mov == 4) & np.isin(rep, [2, 5, 10])] = (
        0  # movement 4 without held-out repetitions: cannot be scored
    )
    rep[(mov == 7) & (rep == 9)] = 0  # movement 7 lacks repetition 9: a deviation
    _db1(tmp_path, subjects=[2], movement=mov, repetition=rep)
    report = check_corpora(None, ninapro=tmp_path)
    errors, warnings = _messages(report, "error", "figure2"), _messages(report, "warning", "figure2")
    assert len(errors) == 1 and "movement 4 has no held-out repetitions 2, 5, 10" in errors[0]
    assert any("movements 12 of exercise 1 are absent" in w for w in warnings)
    assert any("movement 7 has repetitions [1, 2, 3, 4, 5, 6, 7, 8, 10]" in w for w in warnings)
    assert report.corpora["ninapro_db1"]["subjects"]["2"]["E1"]["movements"] == 11


def test_text_output_shows_a_few_per_kind(corpora):
    for spk in ("FELC0", "MWBT0"):
        for wav in (corpora / "timit" / "TIMIT" / "TEST" / "DR1" / spk).iterdir():
            wav.write_bytes(b"")
    report = check_corpora(corpora)
    assert len(_messages(report, "error", "table1")) == 16  # every SI/SX file is a finding ...
    text = report.format_text()
    # ... but each table shows 5 of them and counts the rest; the 4 SA files (read by no job) are listed apart.
    assert text.count("... and 11 more of this kind (unreadable; --json lists them all)") == 2
    assert text.count("the file is empty") == 5 + 5 + 4


def test_cli_subprocess_no_traceback_and_usage_errors(tmp_path, repo_root):
    env = {"PYTHONPATH": str(repo_root / "src"), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "vaenmf.data.cli", "check", str(tmp_path / "absent")]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr
    assert "CANNOT RUN" in out.stdout
    bad = subprocess.run(cmd + ["--exercises", "x"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 64 and "expected integers" in bad.stderr
    assert main(["check", str(tmp_path), "--exercises", "4"]) == 64


def test_console_script_is_declared(repo_root):
    import tomllib

    scripts = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["vaenmf-data"] == "vaenmf.data.cli:main"


def test_front_end_constants_match():
    from vaenmf.data import check, features

    assert (check.SAMPLE_RATE, check.HOP_LENGTH) == (features.SAMPLE_RATE, features.HOP_LENGTH)
    assert check._frames(192000) == features.n_frames(192000) == 1501


# ----------------------------------------------------------------------------------------------------------
# The jobs asked: --noise, --test-noise, --speech-folder


def _speech_folder(root: Path, sparse_audio, seconds=None, rates=(16000, 22050, 8000)):
    """8 speaker folders of 3 recordings (sparse RIFF at several rates); ``seconds``: {speaker index: duration}."""
    for i in range(8):
        for j in range(3):
            sr = rates[(i + j) % len(rates)]
            length = (seconds or {}).get(i, 2.0 + 0.1 * j)
            sparse_audio(
                root / f"spk{i}" / ("takes" if j else "") / f"u{j}.wav", int(length * sr), sr=sr, kind="riff"
            )
    return root


def test_plain_inventory_lists_what_noise_can_name(corpora, sparse_audio, capsys):
    sparse_audio(corpora / "noisex92" / "sub" / "f16.wav", 235 * 19980, sr=19980, kind="riff")
    report = check_corpora(corpora)
    n = report.corpora["noisex92"]
    assert n["names"] == ["babble", "f16", "factory1"]
    assert {e["path"]: e["sample_rate"] for e in n["files"]}["sub/f16.wav"] == 19980
    assert "noise= can name: babble, f16, factory1 (factory is factory1)" in report.format_text()
    assert list(report.experiments) == ["table1", "table2", "figure2"]  # no job asked: the paper's alone


def test_job_noises_by_name_pool_and_path_with_a_test_noise(corpora, sparse_audio, tmp_path):
    sparse_audio(corpora / "noisex92" / "white.wav", 40 * 22050, sr=22050, kind="riff")
    # 20 s: a 2 s validation part, shorter than the 3 s development-set utterances; the 6 s test part holds them.
    sparse_audio(corpora / "noisex92" / "pink.wav", 20 * 8000, sr=8000, kind="riff")
    hum = sparse_audio(tmp_path / "own" / "hum.wav", 20 * 44100, sr=44100, kind="riff")
    report = check_corpora(corpora, noises=["white", "pooled:white+pink", str(hum)], test_noises=["pink"])
    assert list(report.experiments) == ["table1", "table2", "figure2", "jobs_test", "jobs_validation"]
    assert report.experiment("jobs_test")["title"] == (
        f"Your jobs, eval_split=test: noise=white, noise=pooled:white+pink, noise={hum}; test_noise=pink on TIMIT"
    )
    noises = report.corpora["noises"]
    white = noises["white"]
    assert white["file"] == str(corpora / "noisex92" / "white.wav") and white["sample_rate"] == 22050
    # 40 s at 16 kHz: 640000 samples; the first 60% gives 1 + 384000 // 128 frames.
    assert white["train_frames"] == 3001 and white["asked_frames"] == {
        "white": 9000,
        "pooled:white+pink": 4500,
    }
    assert noises["pink"]["for"] == ["noise=pooled:white+pink", "test_noise=pink"]
    assert noises[str(hum)]["seconds"] == 20.0 and noises[str(hum)]["train_frames"] == 1501
    files = {e["path"]: e for e in report.corpora["noisex92"]["files"]}
    assert files["white.wav"]["used_for"] == ["noise=white", "noise=pooled:white+pink"]
    warnings = _messages(report, "warning", "jobs_test")
    assert (
        "white: its training part (24.0 s at 16 kHz) gives 3001 noise dictionary frames of the 9000 noise=white asks"
        in warnings
    )
    assert any(m.startswith(f"{hum}: its training part (12.0 s") for m in warnings)
    # The evaluation noise is pink alone: its validation part stops validation jobs, not test jobs; hum's (2 s, as
    # short) is never mixed with an evaluation utterance, and its 12 s training part holds the 10 s TRAIN ones.
    (error,) = _messages(report, "error", "jobs_validation")
    assert error.startswith(
        f"the validation part of the pink noise ({corpora / 'noisex92' / 'pink.wav'}) (2.00 s: 10% of its 20.00 s) "
        "is shorter than utterance DR"
    )
    assert "(3.00 s), the longest of the validation utterances" in error
    assert _messages(report, "error", "jobs_test") == []
    # The paper's experiments are unaffected by the jobs' noises.
    assert [report.experiment(n)["status"] for n in ("table1", "table2", "figure2")] == ["ok"] * 3
    assert report.experiment("jobs_test")["status"] == "deviates" and report.exit_status == 2


def test_an_unknown_noise_lists_the_names_found_and_a_bad_spelling_is_a_usage_error(corpora, capsys):
    report = check_corpora(corpora, noises=["whte"])
    for name in ("jobs_test", "jobs_validation"):
        (error,) = report.experiment(name)["errors"]
        assert "no NOISEX-92 'whte' noise in" in error and "noises found there: babble, factory1" in error
    assert report.corpora["noises"]["whte"]["error"] == error
    assert main(["check", str(corpora), "--noise", "pooled:white"]) == 64
    assert "--noise='pooled:white': a pool needs two or more noises" in capsys.readouterr().err
    report = check_corpora(corpora, noises=[str(corpora / "nope.wav")])
    assert any(
        f"noise file {corpora / 'nope.wav'} does not exist" in m
        for m in _messages(report, "error", "jobs_test")
    )


def test_jobs_on_timit_without_a_noisex_folder(corpora, sparse_audio, tmp_path):
    hum = sparse_audio(tmp_path / "hum.wav", 235 * 16000, sr=16000, kind="riff")
    report = check_corpora(None, timit=corpora / "timit", noises=[str(hum), "white"])
    # Without NOISEX-92 (nor DB1) the tables are not checked; TIMIT is, for the jobs.
    assert list(report.experiments) == ["jobs_test", "jobs_validation"]
    assert report.corpora["timit"]["core_test"]["complete"] and not report.corpora["noisex92"]["checked"]
    (error,) = _messages(report, "error", "jobs_test")
    assert (
        error.startswith("noise 'white': jobs on TIMIT read named noises from DATA_ROOT/noisex92")
        and "--noisex" in error
    )
    assert report.corpora["noises"][str(hum)]["train_frames"] == 17626
    assert all(set(f.experiments) <= set(JOB_EXPERIMENTS) for f in report.findings)


def test_a_folder_corpus_alone(tmp_path, sparse_audio, capsys):
    # spk4 is the validation speaker (8 speakers dealt 3/8, 1/4, 1/8, 1/4): its 7 s recordings are longer than the
    # 6 s validation part of the generated factory noise (60 s: no NOISEX-92 folder), not than its 18 s test part.
    # (Of equally long ones the first in path order is named, as by the data module.)
    root = _speech_folder(tmp_path / "speech", sparse_audio, seconds={4: 7.0})
    report = check_corpora(None, speech_folder=root)
    # Neither TIMIT nor DB1 is given: only the jobs are checked, and nothing is missing for want of them.
    assert list(report.experiments) == ["jobs_test", "jobs_validation"]
    f = report.corpora["speech_folder"]
    assert (f["speakers"], f["utterances"], f["unreadable"]) == (8, 24, 0)
    assert f["sample_rates"] == {"8000": 8, "16000": 8, "22050": 8}
    parts = {part: info["speakers"] for part, info in f["parts"].items()}
    assert parts == {
        "dictionary": ["spk0", "spk3", "spk7"],
        "training": ["spk1", "spk5"],
        "validation": ["spk4"],
        "test": ["spk2", "spk6"],
    }
    assert f["parts"]["validation"]["longest"]["name"] == "spk4_takes_u1"
    assert report.corpora["noises"]["factory"]["generated"].startswith(
        "the demo's generated factory noise (60 s"
    )
    (error,) = _messages(report, "error")
    assert (
        report.experiment("jobs_validation")["errors"] == [error]
        and not report.experiment("jobs_test")["errors"]
    )
    assert error.startswith("the validation part of the factory noise (6.00 s: 10% of its 60.00 s) is shorter than "
                            "utterance spk4_takes_u1 (7.00 s)")  # fmt: skip
    assert "use a longer generated noise (data.demo_noise_seconds, now 60)" in error
    assert report.exit_status == 2
    assert main(["check", "--speech-folder", str(root)]) == 2
    out = capsys.readouterr().out
    assert "TIMIT: not checked (not given; no experiment asked needs it)" in out
    assert "  validation: 1 speaker, 3 utterances, longest spk4_takes_u1 (7.00 s): spk4" in out
    assert "  8 speakers, 24 recordings" in out and "8000 Hz x 8, 16000 Hz x 8, 22050 Hz x 8" in out
    assert main(["check", "--speech-folder", str(root), "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    # Fewer dictionary frames than asked (a small corpus, 36 s of noise for training): deviates, no error.
    assert [e["status"] for e in doc["experiments"]] == ["deviates", "cannot run"]
    assert doc["corpora"]["speech_folder"]["parts"]["test"]["utterances"] == 6


def test_a_folder_corpus_with_broken_files_and_a_speaker_without_audio(tmp_path, sparse_audio, corpora):
    root = _speech_folder(tmp_path / "speech", sparse_audio)
    (root / "spk4" / "u0.wav").write_bytes(b"junk")  # the validation speaker: read by validation jobs only
    (root / "spk2" / "takes" / "u1.wav").write_bytes(b"")  # a test speaker
    report = check_corpora(corpora, speech_folder=root, noises=["babble"])
    assert list(report.experiments) == ["table1", "table2", "figure2", "jobs_test", "jobs_validation"]
    assert report.experiment("jobs_test")["title"].endswith(f"noise=babble on the folder corpus {root}")
    assert _messages(report, "error", "jobs_validation") == [
        f"{root / 'spk4' / 'u0.wav'}: unknown format (first bytes b'junk'); expected NIST SPHERE ('NIST_1A'), "
        "RIFF WAVE ('RIFF'), a MATLAB v5 .mat file, FLAC, OGG or AIFF"
    ]
    (error,) = _messages(report, "error", "jobs_test")
    assert error.startswith(str(root / "spk2" / "takes" / "u1.wav")) and "the file is empty" in error
    assert report.corpora["speech_folder"]["unreadable"] == 2
    # Named noises come from DATA_ROOT/noisex92, as a folder-corpus job reads them when that folder exists.
    assert report.corpora["noises"]["babble"]["file"] == str(corpora / "noisex92" / "babble.wav")
    (root / "spk9").mkdir()
    (root / "spk9" / "notes.txt").write_text("x")
    report = check_corpora(None, speech_folder=root)
    (error,) = _messages(report, "error", "jobs_test")
    assert error.startswith(f"speaker folder {root / 'spk9'} holds no audio files") and "notes.txt" in error
    assert report.exit_status == 2


def test_the_check_of_a_job_agrees_with_the_data_module(tmp_path):
    """The check's verdict on a noise part is the job's: the same refusal, word for word."""
    import soundfile as sf

    from vaenmf.data.speech import SpeechDataModule
    from vaenmf.errors import DataError

    rng = np.random.default_rng(0)
    root = tmp_path.resolve() / "speech"
    for i in range(4):
        (root / f"s{i}").mkdir(parents=True)
        sf.write(root / f"s{i}" / "a.wav", 0.1 * rng.standard_normal(int((1.5 + 0.1 * i) * 22050)), 22050)
    noise = tmp_path.resolve() / "short.wav"
    sf.write(noise, 0.1 * rng.standard_normal(12 * 22050), 22050)  # a 1.2 s validation part
    report = check_corpora(None, speech_folder=root, noises=[str(noise)])
    (error,) = _messages(report, "error")
    module = SpeechDataModule(corpus="folder", root=str(root), noise=str(noise))
    module.evaluate_on("validation")
    with pytest.raises(DataError) as caught:
        module.setup()
    assert str(caught.value) == error and "utterance s2_a (1.70 s)" in error


def test_the_check_does_not_import_torch(repo_root):
    code = "import sys, vaenmf.data.cli; assert 'torch' not in sys.modules, 'torch imported'"
    env = {"PYTHONPATH": str(repo_root / "src"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr


@pytest.mark.realdata
def test_real_excerpts(shared_data, capsys):
    report = check_corpora(shared_data)
    assert report.exit_status == 2
    errors = _messages(report, "error")
    assert any(f"hint: {shared_data / 'timit_sample'} looks like TIMIT" in m for m in errors)
    assert any("23 of the 27 DB1 files Figure 2 reads are missing" in m for m in errors)
    # jonboley's 20 s clips at 22.05 kHz are what the jobs pick: 1501 frames each.
    noises = report.corpora["noisex92"]["noises"]
    assert noises["babble"]["file"] == "jonboley_22k05_20s/babble.wav"
    assert noises["factory"]["file"] == "jonboley_22k05_20s/factory1.wav"
    warnings = _messages(report, "warning", "table1")
    assert sum("1501 noise dictionary frames of the 9000 asked" in w for w in warnings) == 2
    subjects = report.corpora["ninapro_db1"]["subjects"]
    assert sorted(subjects) == ["1", "2", "3", "4"]
    assert all(
        s["E1"]["movements"] == 12 and set(s["E1"]["repetitions"].values()) == {10} for s in subjects.values()
    )
    files = {e["path"]: e for e in report.corpora["noisex92"]["files"]}
    assert files["limingshi_16k_10s/factoryNoise.mat"]["variable"] == "factoryNoise"
    assert files["kunaljathal_19k98_orig_rate/babble.wav"]["sample_rate"] == 19980

    sample = check_corpora(shared_data, timit=shared_data / "timit_sample")
    t = sample.corpora["timit"]
    assert t["layout"].startswith("NLTK sample")
    assert t["splits"]["(no split)"] == {
        "speakers": 16,
        "si_sx_utterances": 128,
        "sa_utterances": 32,
        "si_sx_hours": 0.108,
    }
    assert t["formats"] == {"SPHERE": 160} and t["sample_rates"] == {"16000": 160}
    assert main(["check", str(shared_data), "--timit", str(shared_data / "timit_sample")]) == 2
    assert "NLTK sample" in capsys.readouterr().out
