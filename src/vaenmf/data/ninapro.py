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
#: The Ninapro convention: repetitions 1, 3, 4, 6, 7, 8, 9 train, 2, 5, 10 test.
TRAIN_REPETITIONS = (1, 3, 4, 6, 7, 8, 9)
TEST_REPETITIONS = (2, 5, 10)

_FILE_PATTERN = re.compile(r"^s(\d+)_a1_e(\d)\.mat$", re.IGNORECASE)


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
    global DB1 numbering from the exercise (the file's ``exercise`` variable, else its name, else ``exercise``).

    Raises:
        DataError: Unreadable or truncated file, missing variables, inconsistent lengths, NaN/inf or negative
            EMG (DB1's EMG is rectified).
    """
    import scipy.io

    path = Path(path)
    try:
        data = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises ValueError, OSError, TypeError... for broken files
        raise DataError(f"{path}: not a readable MAT v5 Ninapro file ({type(err).__name__}: {err})") from err
    emg = _variable(data, "emg", path).astype(np.float64)
    movement = _variable(data, "restimulus", path).reshape(-1).astype(np.int64)
    repetition = _variable(data, "rerepetition", path).reshape(-1).astype(np.int64)
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
    if exercise is None:
        if "exercise" in data:
            exercise = int(np.asarray(data["exercise"]).reshape(-1)[0])
        else:
            match = _FILE_PATTERN.match(path.name)
            exercise = int(match.group(2)) if match else 1
    if exercise not in EXERCISE_OFFSETS:
        raise DataError(f"{path}: exercise must be one of {sorted(EXERCISE_OFFSETS)}, got {exercise}")
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
    found: dict[tuple[int, int], Path] = {}
    for path in sorted(root.rglob("*")):
        match = _FILE_PATTERN.match(path.name)
        if match and path.is_file():
            found.setdefault((int(match.group(1)), int(match.group(2))), path)
    wanted = [(int(s), int(e)) for s in subjects for e in exercises]
    missing = [key for key in wanted if key not in found]
    if missing:
        names = ", ".join(f"S{s}_A1_E{e}.mat" for s, e in missing[:6]) + (" ..." if len(missing) > 6 else "")
        raise CorpusLayoutError(
            f"Ninapro DB1 folder {root} lacks {names} (looked for s<N>/S<N>_A1_E<E>.mat and flat S<N>_A1_E<E>.mat; "
            f"found {len(found)} DB1 files)"
        )
    return {key: found[key] for key in wanted}


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
