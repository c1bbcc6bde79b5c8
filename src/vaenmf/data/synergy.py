"""The muscle-synergy data: per subject and movement, EMG of the training and the held-out repetitions."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from vaenmf.data.ninapro import (
    EXERCISE_MOVEMENTS,
    EXERCISE_OFFSETS,
    NINAPRO_DB1_SAMPLE_RATE,
    TEST_REPETITIONS,
    TRAIN_REPETITIONS,
    EMGRecording,
    load_subject,
)
from vaenmf.data.shortfalls import shortfall
from vaenmf.data.synthetic_emg import DemoEMGSpec, generate_emg_recording
from vaenmf.errors import ConfigError
from vaenmf.validation import as_int_list, check_choice

log = logging.getLogger(__name__)

CORPORA = ("demo", "ninapro")
SPLITS = ("train", "test")


class SynergyDataModule(pl.LightningDataModule):
    """EMG segments of each subject's movements, split by repetition (DESIGN.md section 4, Figure 2).

    Args:
        corpus: ``"demo"`` (generated, :mod:`vaenmf.data.synthetic_emg`) or ``"ninapro"`` (DB1 files).
        data_root: Folder of all corpora (``DATA_ROOT``); the DB1 files are looked for in ``data_root/ninapro_db1``.
        root: The DB1 folder itself (``root/s1/S1_A1_E1.mat`` or flat); overrides ``data_root``.
        subjects: Subject numbers.
        exercises: DB1 exercises to read (1, 2, 3); movements are numbered globally (1-52).
        movements: Movements to use; ``None``: every movement present for the subject.
        train_repetitions, test_repetitions: The split (Ninapro: 1, 3, 4, 6, 7, 8, 9 / 2, 5, 10); disjoint.
        seed: Seed of the demo corpus.
        demo_movements, demo_repetitions, demo_movement_seconds, demo_noise_sigma: Size and noise of the demo.

    Shape:
        :meth:`segment` returns ``(channels, samples)`` float32 nonnegative tensors.
    """

    def __init__(
        self,
        corpus: str = "demo",
        data_root: str | None = None,
        root: str | None = None,
        subjects: Sequence[int] = (1, 2),
        exercises: Sequence[int] = (1,),
        movements: Sequence[int] | None = None,
        train_repetitions: Sequence[int] = TRAIN_REPETITIONS,
        test_repetitions: Sequence[int] = TEST_REPETITIONS,
        seed: int = 0,
        demo_movements: int = 12,
        demo_repetitions: int = 10,
        demo_movement_seconds: float = 2.0,
        demo_noise_sigma: float = 0.15,
    ) -> None:
        super().__init__()
        self.corpus = check_choice(corpus, CORPORA, "data.corpus")
        self.root = root or (str(Path(data_root) / "ninapro_db1") if data_root else None)
        self.subject_ids = as_int_list(subjects, "data.subjects")
        self.exercises = as_int_list(exercises, "data.exercises")
        if any(e not in (1, 2, 3) for e in self.exercises):
            raise ConfigError(f"data.exercises must be among [1, 2, 3] (Ninapro DB1), got {self.exercises}")
        self.movement_ids = as_int_list(movements, "data.movements", allow_none=True)
        self.train_repetitions = as_int_list(train_repetitions, "data.train_repetitions")
        self.test_repetitions = as_int_list(test_repetitions, "data.test_repetitions")
        overlap = set(self.train_repetitions) & set(self.test_repetitions)
        if overlap:
            raise ConfigError(
                f"data.train_repetitions and data.test_repetitions must be disjoint; both contain {sorted(overlap)}"
            )
        if corpus == "ninapro" and not self.root:
            raise ConfigError(
                "data=ninapro_db1 needs the corpus folder: set DATA_ROOT (expects DATA_ROOT/ninapro_db1), "
                "paths.data_root=... or data.root=/path/to/ninapro_db1"
            )
        self.seed = int(seed)
        self.demo_spec = DemoEMGSpec(
            n_movements=int(demo_movements),
            n_repetitions=int(demo_repetitions),
            movement_seconds=float(demo_movement_seconds),
            noise_sigma=float(demo_noise_sigma),
        )
        if corpus == "demo" and max(self.train_repetitions + self.test_repetitions) > int(demo_repetitions):
            raise ConfigError(
                f"data.demo_repetitions is {demo_repetitions}, but the split uses repetition "
                f"{max(self.train_repetitions + self.test_repetitions)}"
            )
        #: Both DB1 and the demo are at 100 Hz.
        self.sample_rate = NINAPRO_DB1_SAMPLE_RATE
        self._recordings: dict[int, EMGRecording] = {}
        self._true: dict[tuple[int, int], np.ndarray] = {}

    def setup(self, stage: str | None = None) -> None:
        if self._recordings:
            return
        for subject in self.subject_ids:
            if self.corpus == "demo":
                recording, synergies = generate_emg_recording(self.seed, subject, self.demo_spec)
                self._true.update({(subject, m): W for m, W in synergies.items()})
            else:
                recording = load_subject(Path(str(self.root)), subject, self.exercises)
            self._recordings[subject] = recording
            log.info(
                "EMG subject %d: %d channels, %d samples, movements %s (%s)",
                subject,
                recording.n_channels,
                recording.emg.shape[1],
                recording.movements(),
                recording.source,
            )

    def _recording(self, subject: int) -> EMGRecording:
        self.setup()
        if subject not in self._recordings:
            raise ConfigError(f"subject {subject} is not in data.subjects {self.subject_ids}")
        return self._recordings[subject]

    def subjects(self) -> list[int]:
        return list(self.subject_ids)

    def movements(self, subject: int) -> list[int]:
        """The movements to analyse for ``subject`` (those requested, checked to be present)."""
        present = self._recording(subject).movements()
        if self.movement_ids is None:
            return present
        missing = [m for m in self.movement_ids if m not in present]
        if missing:
            raise ConfigError(
                f"data.movements {missing} are not in subject {subject}'s recording (present: {present})"
            )
        return list(self.movement_ids)

    def shortfalls(self) -> list[dict[str, object]]:
        """What the recordings give fewer of than the job asks (:mod:`vaenmf.data.shortfalls`).

        Per subject: the movements present against those asked (``data.movements: null`` asks for every movement
        of the exercises read, 12 for DB1 exercise 1; the demo for its ``demo_movements``; explicit movements are
        present or refused); per analysed movement: the training and held-out repetitions present against
        ``data.train_repetitions`` / ``data.test_repetitions``.

        Returns:
            Entries ``{"what", "asked", "got", "unit", "where", ...}``, empty when nothing fell short.
        """
        out: list[dict[str, object]] = []
        for subject in self.subject_ids:
            recording = self._recording(subject)
            present = recording.movements()
            if self.movement_ids is None:
                if self.corpus == "demo":
                    asked = list(range(1, self.demo_spec.n_movements + 1))
                else:
                    asked = [
                        EXERCISE_OFFSETS[e] + m
                        for e in self.exercises
                        for m in range(1, EXERCISE_MOVEMENTS[e] + 1)
                    ]
                missing = [m for m in asked if m not in present]
                if missing:
                    where = f"subject {subject}: movement {', '.join(map(str, missing))} absent"
                    out.append(
                        shortfall(
                            "movements", len(asked), len(asked) - len(missing), where, source=recording.source
                        )
                    )
            for movement in self.movements(subject):
                reps = set(np.unique(recording.repetition[recording.movement == movement]).tolist())
                for what, wanted in (
                    ("training repetitions", self.train_repetitions),
                    ("held-out repetitions", self.test_repetitions),
                ):
                    missing = [r for r in wanted if r not in reps]
                    if missing:
                        where = f"subject {subject}, movement {movement}: repetition {', '.join(map(str, missing))} absent"
                        out.append(
                            shortfall(
                                what, len(wanted), len(wanted) - len(missing), where, source=recording.source
                            )
                        )
        return out

    def segment(self, subject: int, movement: int, split: str) -> torch.Tensor:
        """EMG of one movement over the training or the held-out repetitions, ``(channels, samples)``."""
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {list(SPLITS)}, got {split!r}")
        reps = self.train_repetitions if split == "train" else self.test_repetitions
        return torch.from_numpy(self._recording(subject).segment(movement, reps))

    def true_synergies(self, subject: int, movement: int) -> np.ndarray | None:
        """The generating synergies ``(channels, rank)`` (demo corpus only; ``None`` for recorded data)."""
        self.setup()
        return self._true.get((subject, movement))
