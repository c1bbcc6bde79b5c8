"""Ninapro DB1 reading: real files (realdata), both folder layouts, exercise numbering and every bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from vaenmf.data.ninapro import (
    TEST_REPETITIONS,
    TRAIN_REPETITIONS,
    find_ninapro_files,
    load_subject,
    read_ninapro_mat,
)
from vaenmf.data.synthetic_emg import DemoEMGSpec, generate_emg_recording, write_ninapro_mat
from vaenmf.errors import CorpusLayoutError, DataError

SMALL = DemoEMGSpec(n_movements=3, n_repetitions=10, movement_seconds=0.5, rest_seconds=0.2)


@pytest.mark.realdata
def test_reads_real_db1_file(shared_data):
    rec = read_ninapro_mat(shared_data / "ninapro_db1" / "s1" / "S1_A1_E1.mat")
    assert rec.subject == 1 and rec.n_channels == 10 and rec.sample_rate == 100
    assert rec.movements() == list(range(1, 13))
    assert rec.emg.dtype == np.float32 and (rec.emg >= 0).all()
    train = rec.segment(1, TRAIN_REPETITIONS)
    test = rec.segment(1, TEST_REPETITIONS)
    # About 5 s per repetition at 100 Hz: 7 and 3 repetitions.
    assert 7 * 300 < train.shape[1] < 7 * 700 and 3 * 300 < test.shape[1] < 3 * 700
    raw = scipy.io.loadmat(shared_data / "ninapro_db1" / "s1" / "S1_A1_E1.mat")
    keep = (raw["restimulus"].ravel() == 1) & np.isin(raw["rerepetition"].ravel(), TRAIN_REPETITIONS)
    np.testing.assert_allclose(train, raw["emg"][keep].T.astype(np.float32))


def test_round_trip_in_both_layouts(tmp_path):
    rec, _ = generate_emg_recording(0, 2, SMALL)
    nested = write_ninapro_mat(tmp_path / "nested" / "s2" / "S2_A1_E1.mat", rec)
    write_ninapro_mat(tmp_path / "flat" / "s2_a1_e1.MAT", rec)  # any letter case
    for root in (tmp_path / "nested", tmp_path / "flat"):
        back = load_subject(root, 2, [1])
        np.testing.assert_allclose(back.emg, rec.emg, rtol=1e-6)
        np.testing.assert_array_equal(back.movement, rec.movement)
        np.testing.assert_array_equal(back.repetition, rec.repetition)
    assert find_ninapro_files(tmp_path / "nested", [2], [1])[(2, 1)] == nested


def test_exercise_movements_get_global_numbers(tmp_path):
    rec, _ = generate_emg_recording(0, 1, SMALL)
    write_ninapro_mat(tmp_path / "S1_A1_E1.mat", rec, exercise=1)
    shifted = type(rec)(
        subject=1,
        emg=rec.emg,
        movement=np.where(rec.movement > 0, rec.movement + 12, 0),
        repetition=rec.repetition,
        sample_rate=100,
        source="e2",
    )
    write_ninapro_mat(tmp_path / "S1_A1_E2.mat", shifted, exercise=2)
    # The E2 file stores labels 1..3 (DB1 restarts per exercise); reading maps them to 13..15.
    assert scipy.io.loadmat(tmp_path / "S1_A1_E2.mat")["restimulus"].max() == 3
    both = load_subject(tmp_path, 1, [1, 2])
    assert both.movements() == [1, 2, 3, 13, 14, 15]
    np.testing.assert_allclose(both.segment(14, [1]), rec.segment(2, [1]))


def test_missing_files_name_the_file_and_layouts(tmp_path):
    with pytest.raises(CorpusLayoutError, match="does not exist"):
        find_ninapro_files(tmp_path / "nowhere", [1], [1])
    with pytest.raises(CorpusLayoutError, match=r"S3_A1_E1\.mat.*s<N>/S<N>_A1_E<E>\.mat"):
        find_ninapro_files(tmp_path, [3], [1])


def _write(path, **variables):
    scipy.io.savemat(path, variables)
    return path


def test_bad_files_give_one_clear_error(tmp_path):
    n = 50
    labels = {"restimulus": np.ones((n, 1), np.uint8), "rerepetition": np.ones((n, 1), np.uint8)}
    good = _write(tmp_path / "S1_A1_E1.mat", emg=np.ones((n, 10)), **labels)
    truncated = tmp_path / "S2_A1_E1.mat"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="S2_A1_E1.mat: not a readable MAT"):
        read_ninapro_mat(truncated)
    with pytest.raises(DataError, match=r"no variable 'emg' \(variables present: \['rerepetition'"):
        read_ninapro_mat(_write(tmp_path / "a.mat", **labels))
    with pytest.raises(DataError, match="negative values"):
        read_ninapro_mat(_write(tmp_path / "b.mat", emg=-np.ones((n, 10)), **labels))
    with pytest.raises(DataError, match="NaN"):
        read_ninapro_mat(_write(tmp_path / "c.mat", emg=np.full((n, 10), np.nan), **labels))
    with pytest.raises(DataError, match="truncated file"):
        read_ninapro_mat(_write(tmp_path / "d.mat", emg=np.ones((n - 1, 10)), **labels))
    rec = read_ninapro_mat(good)
    with pytest.raises(DataError, match=r"no samples of movement 5 in repetitions \[1\]"):
        rec.segment(5, [1])


# --------------------------------------------------------------------------------------------------------
# Labels out of range (issue 8's probes), exercises that are not on disk


def _db1_file(path, restimulus, rerepetition, exercise=1, n=60):
    return _write(
        path,
        emg=np.ones((n, 10)),
        restimulus=np.asarray(restimulus, dtype=np.float64).reshape(-1, 1),
        rerepetition=np.asarray(rerepetition, dtype=np.float64).reshape(-1, 1),
        exercise=np.array([[exercise]], np.uint8),
        subject=np.array([[1]], np.uint8),
    )


def _labels(n=60):
    movement = np.repeat(np.arange(1, 4), n // 3)  # movements 1-3
    repetition = np.tile(np.repeat(np.arange(1, 11), 2), n // 20)[:n]
    return movement, repetition


@pytest.mark.parametrize(
    ("variable", "bad", "expected"),
    [
        (
            "restimulus",
            99,
            r"'restimulus' has values outside exercise 1's movements 1-12 \(0 = rest\): 99 \(5 samples\)",
        ),
        (
            "restimulus",
            -1,
            r"'restimulus' has values outside exercise 1's movements 1-12 \(0 = rest\): -1 \(5 samples\)",
        ),
        (
            "rerepetition",
            42,
            r"'rerepetition' has values outside repetitions 1-10 \(0 = rest\): 42 \(5 samples\)",
        ),
        ("restimulus", 2.5, r"'restimulus' has values outside .*: 2\.5 \(5 samples\)"),
    ],
)
def test_labels_out_of_range_are_refused(tmp_path, variable, bad, expected):
    movement, repetition = _labels()
    labels = {"restimulus": movement.astype(float), "rerepetition": repetition.astype(float)}
    labels[variable][10:15] = bad
    path = _db1_file(tmp_path / "S1_A1_E1.mat", labels["restimulus"], labels["rerepetition"])
    with pytest.raises(DataError, match=r"S1_A1_E1\.mat: " + expected):
        read_ninapro_mat(path)
    with pytest.raises(DataError, match=expected):
        load_subject(tmp_path, 1, [1])


def test_movement_range_is_the_exercises(tmp_path):
    movement, repetition = _labels()
    movement = movement.copy()
    movement[:5] = 17  # E2 has 17 movements: fine there, out of range in E1
    read_ninapro_mat(_db1_file(tmp_path / "S1_A1_E2.mat", movement, repetition, exercise=2))
    with pytest.raises(DataError, match=r"exercise 1's movements 1-12 \(0 = rest\): 17 \(5 samples\)"):
        read_ninapro_mat(_db1_file(tmp_path / "S1_A1_E1.mat", movement, repetition, exercise=1))
    movement[:5] = 24
    with pytest.raises(DataError, match=r"exercise 3's movements 1-23"):
        read_ninapro_mat(_db1_file(tmp_path / "S1_A1_E3.mat", movement, repetition, exercise=3))


def test_exercise_asked_that_is_not_on_disk(tmp_path):
    movement, repetition = _labels()
    (tmp_path / "s1").mkdir()
    _db1_file(tmp_path / "s1" / "S1_A1_E1.mat", movement, repetition)
    with pytest.raises(
        CorpusLayoutError,
        match=r"lacks S1_A1_E2\.mat .*exercise 2 was asked \(data\.exercises\) but the folder holds only exercise 1",
    ):
        load_subject(tmp_path, 1, [1, 2])


def test_file_read_as_another_exercise_is_refused(tmp_path):
    movement, repetition = _labels()
    path = _db1_file(tmp_path / "S1_A1_E2.mat", movement, repetition, exercise=2)
    with pytest.raises(DataError, match=r"read as exercise 1 but its 'exercise' variable says 2"):
        read_ninapro_mat(path, exercise=1)


def test_mat_without_the_label_variable(tmp_path):
    path = _write(tmp_path / "S1_A1_E1.mat", emg=np.ones((5, 10)), rerepetition=np.ones((5, 1)))
    with pytest.raises(DataError, match=r"S1_A1_E1\.mat: Ninapro file has no variable 'restimulus'"):
        read_ninapro_mat(path)
