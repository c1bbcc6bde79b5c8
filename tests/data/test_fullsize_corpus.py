"""scripts/make_fullsize_corpus.py: the full-size plan (no writing), a few files of each corpus, and (slow) a small
corpus that `vaenmf-data check` passes."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from vaenmf.data.audio import audio_info, read_audio, read_sphere_header
from vaenmf.data.timit import CORE_TEST_SPEAKERS_BY_DIALECT, DEV_SPEAKERS_BY_DIALECT, index_timit

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_fullsize_corpus.py"


@pytest.fixture(scope="module")
def gen(load_script):
    return load_script("make_fullsize_corpus")


def test_full_scale_plan_is_timits_layout(gen):
    plan = gen.plan_timit(1.0)
    assert Counter(p.split for p in plan) == {"TRAIN": 462, "TEST": 168}
    assert len({p.speaker for p in plan}) == 630  # ids are unique across splits, as TIMIT's
    for split, per_dr in (("TRAIN", gen.TRAIN_PER_DIALECT), ("TEST", gen.TEST_PER_DIALECT)):
        assert Counter(p.dialect for p in plan if p.split == split) == per_dr
    test = {(p.dialect, p.speaker) for p in plan if p.split == "TEST"}
    for by_dialect in (CORE_TEST_SPEAKERS_BY_DIALECT, DEV_SPEAKERS_BY_DIALECT):
        assert {(dr, s) for dr, group in by_dialect.items() for s in group} <= test
    genders = Counter(p.gender for p in plan)
    assert genders["M"] / 630 == pytest.approx(438 / 630, abs=0.01)
    for p in plan:
        assert len(p.utts) == len(set(p.utts)) == 10
        assert p.utts[:2] == ("SA1", "SA2")
        assert sum(u.startswith("SI") for u in p.utts) == 3 and sum(u.startswith("SX") for u in p.utts) == 5
        assert (
            len(p.speaker) == 5
            and p.speaker[0] in "MF"
            and p.speaker[1:4].isalpha()
            and p.speaker[4].isdigit()
        )
    assert plan == gen.plan_timit(1.0)  # deterministic


def test_scale_keeps_the_protocol_sets(gen):
    plan = gen.plan_timit(0.01)
    assert Counter(p.dialect for p in plan if p.split == "TRAIN") == dict.fromkeys(gen.TRAIN_PER_DIALECT, 2)
    assert (
        sum(p.split == "TEST" for p in plan) == 24 + 50
    )  # the core and dev sets; the others round to 0 per DR
    assert gen.noise_seconds(1.0) == 235.0 and gen.noise_seconds(0.01) == 125.0
    assert gen.db1_spec(3, 1.0).n_movements == 23 and gen.db1_spec(2, 0.01).movement_seconds == 0.5


def test_timit_files_are_sphere_with_a_correct_header(tmp_path, gen):
    plan = gen.plan_timit(1.0)
    some = [plan[0], next(p for p in plan if p.speaker == "MDAB0")]
    assert gen.write_timit(tmp_path / "timit", some) == 20
    utts = index_timit(tmp_path / "timit")
    assert len(utts) == 20 and {u.split for u in utts} == {"TRAIN", "TEST"}
    mdab0 = [u for u in utts if u.speaker == "MDAB0"]
    assert mdab0[0].path.parent == tmp_path / "timit" / "TIMIT" / "TEST" / "DR1" / "MDAB0"
    for u in utts:
        header = read_sphere_header(u.path)
        info = audio_info(u.path)
        assert u.path.read_bytes()[:16].startswith(b"NIST_1A\n   1024\n")
        assert info.format == "SPHERE" and info.sample_rate == 16000 and header["sample_n_bytes"] == 2
        assert 2.0 <= info.seconds <= 5.0
        assert header["utterance_id"] == f"{u.speaker.lower()}_{u.utt.lower()}"
    wave, sr = read_audio(mdab0[0].path)
    assert sr == 16000 and 0.1 < float(wave.abs().max()) <= 1.0


def test_noisex_files_hold_one_variable_named_after_the_file(tmp_path, gen):
    assert gen.write_noisex(tmp_path, seconds=0.3) == 4
    for name in gen.NOISE_NAMES:
        path = tmp_path / f"{name}.mat"
        (var,) = scipy.io.whosmat(str(path))
        assert var == (name, (int(round(0.3 * 19980)), 1), "double")
        values = scipy.io.loadmat(str(path))[name]
        assert 20000 < np.abs(values).max() <= 32767 and np.all(values == np.round(values))  # int16 scale
        assert audio_info(path).sample_rate == 19980


def test_db1_files_have_the_real_variables(tmp_path, gen):
    from vaenmf.data.ninapro import load_subject, read_ninapro_mat

    assert gen.write_db1(tmp_path, scale=0.01, subjects=[7]) == 3
    for e, n_move in ((1, 12), (2, 17), (3, 23)):
        path = tmp_path / "s7" / f"S7_A1_E{e}.mat"
        whos = {name: (shape, cls) for name, shape, cls in scipy.io.whosmat(str(path))}
        assert set(whos) == {
            "emg",
            "stimulus",
            "restimulus",
            "repetition",
            "rerepetition",
            "glove",
            "subject",
            "exercise",
        }
        n = whos["emg"][0][0]
        assert whos["emg"][0] == (n, 10) and whos["glove"][0] == (n, 22) and whos["restimulus"][0] == (n, 1)
        d = scipy.io.loadmat(str(path))
        assert d["restimulus"].dtype == np.uint8 and sorted(np.unique(d["restimulus"])) == list(
            range(n_move + 1)
        )
        assert sorted(np.unique(d["rerepetition"])) == list(range(11))
        assert int(d["subject"][0, 0]) == 7 and int(d["exercise"][0, 0]) == e
        assert (d["emg"] >= 0).all() and not np.array_equal(d["stimulus"], d["restimulus"])
        assert read_ninapro_mat(path).movements()[-1] == {1: 12, 2: 29, 3: 52}[e]
    assert load_subject(tmp_path, 7, [1, 2, 3]).movements() == list(range(1, 53))


def test_refuses_a_bad_scale_and_a_non_empty_folder(tmp_path, gen, capsys):
    with pytest.raises(SystemExit):
        gen.main([str(tmp_path / "a"), "--scale", "0"])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("")
    with pytest.raises(SystemExit):
        gen.main([str(tmp_path / "b")])
    assert "not empty" in capsys.readouterr().err


@pytest.mark.slow
def test_small_corpus_passes_the_check(tmp_path, repo_root):
    from vaenmf.data.cli import main

    env = {"PYTHONPATH": str(repo_root / "src"), "PATH": "/usr/bin:/bin"}
    out = tmp_path / "corpus"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), "--scale", "0.02"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr
    assert main(["check", str(out)]) == 0
    from vaenmf.data.check import check_corpora

    report = check_corpora(out)
    assert (
        report.corpora["timit"]["core_test"]["utterances"] == 192
        and report.corpora["timit"]["dev"]["utterances"] == 400
    )
    assert len(report.corpora["ninapro_db1"]["subjects"]) == 27
