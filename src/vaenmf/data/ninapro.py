"""Ninapro DB1 recordings: the rectified 10-channel EMG of the muscle-synergy study (Figure 2).

A DB1 file ``S<subject>_A1_E<exercise>.mat`` (MAT v5) holds ``emg`` ``(N, 10)`` (Otto Bock electrodes, RMS-rectified,
100 Hz), ``restimulus``/``rerepetition`` ``(N, 1)`` (the movement and repetition labels, relabelled offline to the
actual movement; 0 is rest) and the raw ``stimulus``/``repetition`` labels. Movement labels restart at 1 inside
each exercise file; :data:`EXERCISE_OFFSETS` maps them to the global DB1 numbering (E1: 1-12, E2: 13-29,
E3: 30-52). The corpus folder is either ``root/s1/S1_A1_E1.mat`` (the official per-subject folders) or flat
``root/S1_A1_E1.mat``, in any letter case.

References:
    Atzori et al., "Electromyography data for non-invasive naturally-controlled robotic hand prostheses",
    Scientific Data 1, 140053 (2014).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaenmf.errors import CorpusLayoutError, DataError

#: Sampling rate of DB1's rectified EMG.
NINAPRO_DB1_SAMPLE_RATE = 100
#: Added to an exercise's local movement label to get the global DB1 movement number.
EXERCISE_OFFSETS = {1: 0, 2: 12, 3: 29}
#: Movements per exercise file (local labels 1..n; 0 is rest): E1 12 finger movements, E2 17, E3 23.
EXERCISE_MOVEMENTS = {1: 12, 2: 17, 3: 23}
#: Every DB1 movement is repeated 10 times (labels 1..10; 0 is rest).
N_REPETITIONS = 10
#: The Ninapro convention: repetitions 1, 3, 4, 6, 7, 8, 9 train, 2, 5, 10 test.
TRAIN_REPETITIONS = (1, 3, 4, 6, 7, 8, 9)
TEST_REPETITIONS = (2, 5, 10)

_FILE_PATTERN = re.compile(r"^s(\d+)_a1_e(\d)\.mat$", re.IGNORECASE)


def _value_counts(values: np.ndarray, limit: int = 8) -> str:
    uniq, counts = np.unique(values, return_counts=True)
    shown = ", ".join(
        f"{_fmt_label(v)} ({c} samples)" for v, c in zip(uniq[:limit], counts[:limit], strict=True)
    )
    return shown + (f" and {uniq.size - limit} more values" if uniq.size > limit else "")


def _fmt_label(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{float(v):g}"


def check_labels(path: str | Path, exercise: int, restimulus: np.ndarray, rerepetition: np.ndarray) -> None:
    """Refuse DB1 labels outside the exercise's range, before they can be analysed as something they are not.

    ``restimulus`` must hold 0 (rest) or a movement of the exercise (1..:data:`EXERCISE_MOVEMENTS`), and
    ``rerepetition`` 0 (rest) or 1..10. Otherwise a label 99 would be analysed as a movement of its own, a -1
    would drop the samples of the movement it replaced, and a repetition 42 would silently remove samples from
    the held-out repetitions.

    Args:
        path: The file the labels come from (for the message).
        exercise: The exercise (1, 2, 3) the file holds.
        restimulus: Movement labels as stored (exercise-local).
        rerepetition: Repetition labels as stored.

    Raises:
        DataError: Naming the file, the variable and the bad values (with their sample counts).
    """
    n_move = EXERCISE_MOVEMENTS[exercise]
    for name, values, top, what in (
        ("restimulus", restimulus, n_move, f"exercise {exercise}'s movements 1-{n_move} (0 = rest)"),
        ("rerepetition", rerepetition, N_REPETITIONS, f"repetitions 1-{N_REPETITIONS} (0 = rest)"),
    ):
        values = np.asarray(values).reshape(-1)
        if values.dtype.kind not in "iub" and (values.dtype.kind != "f" or not np.isfinite(values).all()):
            raise DataError(f"{path}: {name!r} holds non-numeric or non-finite labels; expected integers")
        bad = (values < 0) | (values > top) | (values != np.round(values))
        if bad.any():
            raise DataError(
                f"{path}: {name!r} has values outside {what}: {_value_counts(values[bad])}; "
                f"expected labels 0-{top} (DB1 movement labels restart at 1 in each exercise file: "
                "E1 1-12, E2 1-17, E3 1-23)"
            )


@dataclass(frozen=True)
class EMGRecording:
    """One subject's EMG with per-sample movement and repetition labels (global movement numbers).

    Shape:
        emg: ``(channels, samples)`` float32, nonnegative; movement, repetition: ``(samples,)`` int; 0 = rest.
    """

    subject: int
    emg: np.ndarray
    movement: np.ndarray
    repetition: np.ndarray
    sample_rate: int
    source: str

    @property
    def n_channels(self) -> int:
        return int(self.emg.shape[0])

    def movements(self) -> list[int]:
        """The movements present (rest excluded), ascending."""
        return sorted(int(m) for m in np.unique(self.movement) if m > 0)

    def segment(self, movement: int, repetitions: Iterable[int]) -> np.ndarray:
        """EMG samples of ``movement`` during the given repetitions, concatenated in time order.

        Raises:
            DataError: If no sample carries that movement and one of those repetitions.

        Shape:
            output: ``(channels, n)``.
        """
        reps = sorted({int(r) for r in repetitions})
        keep = (self.movement == movement) & np.isin(self.repetition, reps)
        if not keep.any():
            raise DataError(
                f"{self.source}: no samples of movement {movement} in repetitions {reps} "
                f"(present: movements {self.movements()}, repetitions "
                f"{sorted(int(r) for r in np.unique(self.repetition[self.movement == movement]) if r > 0)})"
            )
        return self.emg[:, keep]


def _variable(data: dict, name: str, path: Path, fallback: str | None = None) -> np.ndarray:
    if name in data:
        return np.asarray(data[name])
    if fallback is not None and fallback in data:
        return np.asarray(data[fallback])
    present = sorted(k for k in data if not k.startswith("__"))
    raise DataError(f"{path}: Ninapro file has no variable {name!r} (variables present: {present})")


def read_ninapro_mat(path: str | Path, exercise: int | None = None) -> EMGRecording:
    """Read one Ninapro DB1 ``.mat`` file.

    Uses ``restimulus``/``rerepetition`` (the relabelled movement boundaries); movement labels are mapped to the
    global DB1 numbering from the exercise (``exercise`` when given, else the file's ``exercise`` variable, else
    its name, else 1).

    Raises:
        DataError: Unreadable or truncated file, missing variables, inconsistent lengths, NaN/inf or negative
            EMG (DB1's EMG is rectified), labels outside the exercise's movements or repetitions 1-10 (see
            :func:`check_labels`), or an ``exercise`` that contradicts the file's own ``exercise`` variable.
    """
    import scipy.io

    path = Path(path)
    try:
        data = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises ValueError, OSError, TypeError... for broken files
        raise DataError(f"{path}: not a readable MAT v5 Ninapro file ({type(err).__name__}: {err})") from err
    emg = _variable(data, "emg", path).astype(np.float64)
    restimulus = _variable(data, "restimulus", path).reshape(-1)
    rerepetition = _variable(data, "rerepetition", path).reshape(-1)
    movement, repetition = restimulus, rerepetition
    if emg.ndim != 2:
        raise DataError(f"{path}: 'emg' must be (samples, channels), got shape {emg.shape}")
    if not (emg.shape[0] == movement.shape[0] == repetition.shape[0]):
        raise DataError(
            f"{path}: 'emg' has {emg.shape[0]} samples but 'restimulus' {movement.shape[0]} and "
            f"'rerepetition' {repetition.shape[0]} (truncated file?)"
        )
    if not np.isfinite(emg).all():
        raise DataError(f"{path}: 'emg' contains NaN or inf")
    if (emg < 0).any():
        raise DataError(f"{path}: 'emg' has negative values (min {emg.min():.4g}); DB1 EMG is rectified")
    stored = int(np.asarray(data["exercise"]).reshape(-1)[0]) if "exercise" in data else None
    if exercise is None:
        if stored is not None:
            exercise = stored
        else:
            match = _FILE_PATTERN.match(path.name)
            exercise = int(match.group(2)) if match else 1
    elif stored is not None and stored != exercise:
        # The labels restart at 1 in each exercise: reading an E2 file as E1 would renumber every movement.
        raise DataError(
            f"{path}: read as exercise {exercise} but its 'exercise' variable says {stored}; expected the file "
            f"S<N>_A1_E{exercise}.mat of exercise {exercise}"
        )
    if exercise not in EXERCISE_OFFSETS:
        raise DataError(f"{path}: exercise must be one of {sorted(EXERCISE_OFFSETS)}, got {exercise}")
    check_labels(path, exercise, restimulus, rerepetition)
    movement = restimulus.astype(np.int64)
    repetition = rerepetition.astype(np.int64)
    subject_var = data.get("subject")
    match = _FILE_PATTERN.match(path.name)
    subject = (
        int(np.asarray(subject_var).reshape(-1)[0])
        if subject_var is not None
        else (int(match.group(1)) if match else 0)
    )
    movement = np.where(movement > 0, movement + EXERCISE_OFFSETS[exercise], 0)
    return EMGRecording(
        subject=subject,
        emg=np.ascontiguousarray(emg.T, dtype=np.float32),
        movement=movement,
        repetition=repetition,
        sample_rate=NINAPRO_DB1_SAMPLE_RATE,
        source=str(path),
    )


def find_ninapro_files(root: str | Path, subjects: Sequence[int], exercises: Sequence[int]) -> dict:
    """Locate ``S<s>_A1_E<e>.mat`` for every requested subject and exercise under ``root``.

    Returns:
        ``{(subject, exercise): path}``.

    Raises:
        CorpusLayoutError: ``root`` is not a folder, or a requested file is in neither layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusLayoutError(
            f"Ninapro DB1 folder {root} does not exist (expected {root}/s1/S1_A1_E1.mat or {root}/S1_A1_E1.mat; "
            "set data.root or DATA_ROOT)"
        )
    found = {key: paths[0] for key, paths in scan_ninapro_files(root).items()}
    wanted = [(int(s), int(e)) for s in subjects for e in exercises]
    missing = [key for key in wanted if key not in found]
    if missing:
        names = ", ".join(f"S{s}_A1_E{e}.mat" for s, e in missing[:6]) + (" ..." if len(missing) > 6 else "")
        on_disk = sorted({e for _, e in found})
        absent = sorted({e for _, e in missing} - set(on_disk))
        hint = (
            f"; exercise {', '.join(map(str, absent))} was asked (data.exercises) but the folder holds only "
            f"exercise {', '.join(map(str, on_disk)) or 'none'}"
            if absent
            else ""
        )
        raise CorpusLayoutError(
            f"Ninapro DB1 folder {root} lacks {names} (looked for s<N>/S<N>_A1_E<E>.mat and flat S<N>_A1_E<E>.mat; "
            f"found {len(found)} DB1 files){hint}"
        )
    return {key: found[key] for key in wanted}


def scan_ninapro_files(root: str | Path) -> dict[tuple[int, int], list[Path]]:
    """Every ``S<s>_A1_E<e>.mat`` (any case, any depth) under ``root``, by (subject, exercise).

    When one recording is present twice, the first path in sorted order is the one the loaders read.

    Raises:
        CorpusLayoutError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusLayoutError(
            f"Ninapro DB1 folder {root} does not exist (expected {root}/s1/S1_A1_E1.mat or {root}/S1_A1_E1.mat; "
            "set data.root or DATA_ROOT)"
        )
    found: dict[tuple[int, int], list[Path]] = {}
    for path in sorted(root.rglob("*")):
        match = _FILE_PATTERN.match(path.name)
        if match and path.is_file():
            found.setdefault((int(match.group(1)), int(match.group(2))), []).append(path)
    return found


def load_subject(root: str | Path, subject: int, exercises: Sequence[int]) -> EMGRecording:
    """One subject's recordings of the given exercises, concatenated in time (movements globally numbered)."""
    files = find_ninapro_files(root, [subject], exercises)
    parts = [read_ninapro_mat(files[(subject, e)], exercise=e) for e in exercises]
    channels = {p.n_channels for p in parts}
    if len(channels) != 1:
        raise DataError(f"subject {subject}: exercise files disagree on the channel count {sorted(channels)}")
    return EMGRecording(
        subject=subject,
        emg=np.concatenate([p.emg for p in parts], axis=1),
        movement=np.concatenate([p.movement for p in parts]),
        repetition=np.concatenate([p.repetition for p in parts]),
        sample_rate=parts[0].sample_rate,
        source=", ".join(p.source for p in parts),
    )
