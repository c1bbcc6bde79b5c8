"""Write a generated corpus of the real corpora's size and layout, for dry runs of the full study.

    python scripts/make_fullsize_corpus.py OUT_DIR [--scale 1.0] [--seed 0]

Then ``DATA_ROOT=OUT_DIR`` is laid out as the data configs expect the real corpora:

- ``OUT_DIR/timit/TIMIT/{TRAIN,TEST}/DR1..DR8/<SPEAKER>/<UTT>.WAV``: 462 TRAIN and 168 TEST speakers, each with
  the 10 TIMIT sentence names (SA1, SA2, 3 SI, 5 SX) of 2-4 s from the demo synthesiser
  (:mod:`vaenmf.data.synthetic`), as uncompressed NIST SPHERE files with the LDC ``NIST_1A`` header (16 kHz,
  16-bit). The speakers per dialect region are TIMIT's; the 24 core test speakers and the 50 development
  speakers (Kaldi's list) are under their real names and dialect regions, the others get generated TIMIT-style
  ids (about 70% male, as TIMIT).
- ``OUT_DIR/noisex92/{babble,factory1,white,pink}.mat``: 235 s at 19.98 kHz, MAT v5 with one float64 variable
  named after the file at int16 scale, as the official NOISEX-92 files.
- ``OUT_DIR/ninapro_db1/s<N>/S<N>_A1_E<E>.mat``: 27 subjects x 3 exercises from the demo EMG generator
  (:mod:`vaenmf.data.synthetic_emg`) with DB1's variables: ``emg`` (N, 10) rectified at 100 Hz and quantised
  like DB1's, ``stimulus``/``restimulus`` and ``repetition``/``rerepetition`` (N, 1) uint8 (movement labels
  restart at 1 in each exercise: 12, 17, 23 movements; 10 repetitions of 5 s with 3 s of rest), ``glove``
  (N, 22), ``subject``, ``exercise``; compressed, as the distributed files.

``--scale`` (0 < scale <= 1) shrinks what the protocol does not fix, so that a test can write a small corpus that
still passes ``vaenmf-data check``: the TRAIN speakers (at least 2 per dialect region) and the TEST speakers
outside the core and development sets, the noise durations (never below 125 s, the least that gives the 9000
noise dictionary frames) and the DB1 repetition lengths (never below 0.5 s). The core test set, the development
set, the 27 DB1 subjects x 3 exercises and the noise names are always complete.

Files are written one at a time (memory stays bounded by the largest single file: the 235 s babble noise's
synthesis, about 1 GB). Everything is deterministic given ``--seed``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaenmf.data.audio import NOISEX_SAMPLE_RATE, write_sphere
from vaenmf.data.ninapro import EXERCISE_MOVEMENTS
from vaenmf.data.synthetic import make_noise, make_speakers, stream_rng, synth_utterance
from vaenmf.data.synthetic_emg import DemoEMGSpec, generate_emg_recording
from vaenmf.data.timit import CORE_TEST_SPEAKERS_BY_DIALECT, DEV_SPEAKERS_BY_DIALECT

#: TIMIT's speakers per dialect region (LDC documentation: 462 TRAIN, 168 TEST).
TRAIN_PER_DIALECT = {"DR1": 38, "DR2": 76, "DR3": 76, "DR4": 68, "DR5": 70, "DR6": 35, "DR7": 77, "DR8": 22}
TEST_PER_DIALECT = {"DR1": 11, "DR2": 26, "DR3": 26, "DR4": 32, "DR5": 28, "DR6": 11, "DR7": 23, "DR8": 11}
UTTERANCE_SECONDS = (2.0, 4.0)
TIMIT_RATE = 16000
NOISE_NAMES = ("babble", "factory1", "white", "pink")
NOISE_SECONDS = 235.0
#: The least noise duration that gives 9000 dictionary frames from its first 60% at 16 kHz (120 s) plus margin.
MIN_NOISE_SECONDS = 125.0
DB1_SUBJECTS = 27
DB1_EXERCISES = (1, 2, 3)
DB1_MOVEMENT_SECONDS = 5.0
DB1_REST_SECONDS = 3.0
DB1_MIN_MOVEMENT_SECONDS = 0.5
DB1_MIN_REST_SECONDS = 0.3
#: DB1's EMG quantisation step (the Otto Bock electrodes' output, 5 V / 2048).
DB1_EMG_STEP = 5.0 / 2048
#: Samples by which DB1's raw stimulus leads the relabelled restimulus (the movement follows the cue).
DB1_STIMULUS_LEAD = 30

# Seed streams of this script (separate from the demo corpora's).
_S_NAMES, _S_UTTNAMES, _S_UTT, _S_DURATION, _S_NOISE, _S_GLOVE = range(300, 306)


@dataclass(frozen=True)
class SpeakerPlan:
    """One TIMIT speaker to write: ``TIMIT/<split>/<dialect>/<speaker>/<utt>.WAV`` for each of ``utts``."""

    split: str
    dialect: str
    speaker: str
    utts: tuple[str, ...]
    index: int

    @property
    def gender(self) -> str:
        return self.speaker[0]


def _scaled(n: int, scale: float, least: int = 0) -> int:
    return max(least, int(round(n * scale)))


def _speaker_names(count: int, gender_of: Sequence[str], taken: set[str], seed: int) -> list[str]:
    """``count`` TIMIT-style ids (gender letter, 3 initials, a digit) that are not in ``taken``."""
    rng = stream_rng(seed, _S_NAMES)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    names = []
    for i in range(count):
        while True:
            name = gender_of[i] + "".join(rng.choice(list(letters), 3)) + str(int(rng.integers(0, 10)))
            if name not in taken:
                taken.add(name)
                names.append(name)
                break
    return names


def _utterance_names(speaker_index: int, seed: int) -> tuple[str, ...]:
    """SA1, SA2, 3 SI and 5 SX names, as every TIMIT speaker has (SI 453-2290, SX 3-452, distinct)."""
    rng = stream_rng(seed, _S_UTTNAMES, speaker_index)
    si = sorted(int(x) for x in rng.choice(np.arange(453, 2291), 3, replace=False))
    sx = sorted(int(x) for x in rng.choice(np.arange(3, 453), 5, replace=False))
    return ("SA1", "SA2", *(f"SI{n}" for n in si), *(f"SX{n}" for n in sx))


def plan_timit(scale: float = 1.0, seed: int = 0) -> list[SpeakerPlan]:
    """Every TIMIT speaker to write, TRAIN then TEST, by dialect region.

    Args:
        scale: Fraction of the TRAIN speakers (at least 2 per dialect region) and of the TEST speakers outside
            the core test and development sets to write; those two sets are always complete.
        seed: Random seed (generated ids and utterance names).
    """
    reserved = {
        s
        for group in (*CORE_TEST_SPEAKERS_BY_DIALECT.values(), *DEV_SPEAKERS_BY_DIALECT.values())
        for s in group
    }
    wanted: list[tuple[str, str, str | None]] = []  # (split, dialect, real name or None)
    for dr, n in TRAIN_PER_DIALECT.items():
        wanted += [("TRAIN", dr, None)] * _scaled(n, scale, least=2)
    for dr, n in TEST_PER_DIALECT.items():
        real = list(CORE_TEST_SPEAKERS_BY_DIALECT[dr]) + list(DEV_SPEAKERS_BY_DIALECT[dr])
        others = n - len(real)
        wanted += [("TEST", dr, name) for name in real] + [("TEST", dr, None)] * _scaled(others, scale)
    unnamed = [i for i, w in enumerate(wanted) if w[2] is None]
    # About 70% of TIMIT's speakers are male (438 of 630).
    genders = ["F" if (k * 3) % 10 < 3 else "M" for k in range(len(unnamed))]
    names = iter(_speaker_names(len(unnamed), genders, set(reserved), seed))
    plan = []
    for i, (split, dr, name) in enumerate(wanted):
        speaker = name if name is not None else next(names)
        plan.append(SpeakerPlan(split, dr, speaker, _utterance_names(i, seed), i))
    return plan


def _timit_utterances(plan: Sequence[SpeakerPlan], seed: int) -> Iterator[tuple[Path, np.ndarray, str]]:
    """(relative path, waveform, utterance id) for every utterance, one at a time."""
    # Synthetic profiles alternate male (even index) and female (odd): speaker i of the plan takes 2i or 2i+1.
    profiles = make_speakers(2 * (max(p.index for p in plan) + 1), seed) if plan else []
    for p in plan:
        profile = profiles[2 * p.index + (0 if p.gender == "M" else 1)]
        for j, utt in enumerate(p.utts):
            duration = float(stream_rng(seed, _S_DURATION, p.index, j).uniform(*UTTERANCE_SECONDS))
            wave = synth_utterance(profile, stream_rng(seed, _S_UTT, p.index, j), duration_s=duration)
            yield (
                Path("TIMIT") / p.split / p.dialect / p.speaker / f"{utt}.WAV",
                wave,
                f"{p.speaker.lower()}_{utt.lower()}",
            )


def write_timit(out: Path, plan: Sequence[SpeakerPlan], seed: int = 0) -> int:
    """Write the planned speakers under ``out`` (the ``timit`` folder); returns the number of files."""
    n = 0
    for rel, wave, uid in _timit_utterances(plan, seed):
        write_sphere(out / rel, wave, TIMIT_RATE, utterance_id=uid)
        n += 1
    return n


def noise_seconds(scale: float) -> float:
    """Duration of each generated noise at ``scale`` (235 s at full scale, never below 125 s)."""
    return max(NOISE_SECONDS * scale, MIN_NOISE_SECONDS)


def _noise(name: str, seconds: float, seed: int) -> np.ndarray:
    n = int(round(seconds * NOISEX_SAMPLE_RATE))
    if name == "babble":
        return make_noise("babble", seconds, seed, sr=NOISEX_SAMPLE_RATE).numpy().astype(np.float64)
    if name == "factory1":
        return make_noise("factory", seconds, seed, sr=NOISEX_SAMPLE_RATE).numpy().astype(np.float64)
    rng = stream_rng(seed, _S_NOISE, NOISE_NAMES.index(name))
    white = rng.standard_normal(n)
    if name == "white":
        return white
    # Pink: white noise shaped to 1/f power in the frequency domain.
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n, 1.0 / NOISEX_SAMPLE_RATE)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n)


def write_noisex(out: Path, seconds: float, seed: int = 0, names: Sequence[str] = NOISE_NAMES) -> int:
    """Write the NOISEX-92-style ``.mat`` files under ``out`` (the ``noisex92`` folder); returns the count."""
    import scipy.io

    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        wave = _noise(name, seconds, seed)
        # int16 scale, as the official files (the reader divides by 32768); peak at about -1 dBFS.
        values = np.round(wave * (29000.0 / (np.max(np.abs(wave)) + 1e-12)))
        scipy.io.savemat(out / f"{name}.mat", {name: values[:, None]})
        del wave, values
    return len(names)


def db1_spec(exercise: int, scale: float) -> DemoEMGSpec:
    """The demo EMG generator's settings for one exercise file at ``scale``."""
    return DemoEMGSpec(
        n_movements=EXERCISE_MOVEMENTS[exercise],
        n_repetitions=10,
        movement_seconds=max(DB1_MOVEMENT_SECONDS * scale, DB1_MIN_MOVEMENT_SECONDS),
        rest_seconds=max(DB1_REST_SECONDS * scale, DB1_MIN_REST_SECONDS),
    )


def db1_variables(subject: int, exercise: int, scale: float, seed: int = 0) -> dict[str, np.ndarray]:
    """The variables of ``S<subject>_A1_E<exercise>.mat``, as DB1 stores them."""
    # Exercises of a subject are separate sessions: each gets its own seed stream.
    rec, _ = generate_emg_recording(seed * 10 + exercise, subject, db1_spec(exercise, scale))
    emg = np.round(np.round(rec.emg.T.astype(np.float64) / DB1_EMG_STEP) * DB1_EMG_STEP, 4)
    restimulus = rec.movement.astype(np.uint8)  # generated labels are 1..n: already exercise-local
    rerepetition = rec.repetition.astype(np.uint8)
    lead = min(DB1_STIMULUS_LEAD, restimulus.size)
    stimulus = np.concatenate([restimulus[lead:], np.zeros(lead, np.uint8)])
    repetition = np.concatenate([rerepetition[lead:], np.zeros(lead, np.uint8)])
    n = restimulus.size
    rng = stream_rng(seed, _S_GLOVE, subject, exercise)
    t = np.arange(n) / 100.0
    phase = rng.uniform(0, 2 * np.pi, 22)
    freq = rng.uniform(0.05, 0.3, 22)
    # The CyberGlove's 22 joint angles: integer readings drifting slowly around a rest posture.
    glove = np.round(rng.uniform(60, 160, 22) + 25 * np.sin(2 * np.pi * freq * t[:, None] + phase))
    return {
        "emg": emg,
        "stimulus": stimulus.reshape(-1, 1),
        "restimulus": restimulus.reshape(-1, 1),
        "repetition": repetition.reshape(-1, 1),
        "rerepetition": rerepetition.reshape(-1, 1),
        "glove": glove,
        "subject": np.array([[subject]], dtype=np.uint8),
        "exercise": np.array([[exercise]], dtype=np.uint8),
    }


def write_db1(
    out: Path,
    scale: float,
    seed: int = 0,
    subjects: Sequence[int] = tuple(range(1, DB1_SUBJECTS + 1)),
    exercises: Sequence[int] = DB1_EXERCISES,
) -> int:
    """Write ``out/s<N>/S<N>_A1_E<E>.mat`` (the ``ninapro_db1`` folder); returns the number of files."""
    import scipy.io

    n = 0
    for s in subjects:
        for e in exercises:
            path = out / f"s{s}" / f"S{s}_A1_E{e}.mat"
            path.parent.mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(path, db1_variables(s, e, scale, seed), do_compression=True)
            n += 1
    return n


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to write (becomes DATA_ROOT)")
    parser.add_argument("--scale", type=float, default=1.0, help="0 < scale <= 1 (see the module docstring)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (0.0 < args.scale <= 1.0) or math.isnan(args.scale):
        parser.error(f"--scale must be in (0, 1], got {args.scale}")
    out: Path = args.out_dir
    if out.exists() and any(out.iterdir()):
        parser.error(f"{out} exists and is not empty; choose a new folder")
    started = time.perf_counter()

    t0 = time.perf_counter()
    plan = plan_timit(args.scale, args.seed)
    n_timit = write_timit(out / "timit", plan, args.seed)
    print(
        f"timit: {len(plan)} speakers, {n_timit} SPHERE files, {_du(out / 'timit') / 1e6:.0f} MB, "
        f"{time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    seconds = noise_seconds(args.scale)
    n_noise = write_noisex(out / "noisex92", seconds, args.seed)
    print(
        f"noisex92: {n_noise} files of {seconds:.0f} s at {NOISEX_SAMPLE_RATE} Hz, "
        f"{_du(out / 'noisex92') / 1e6:.0f} MB, {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    n_db1 = write_db1(out / "ninapro_db1", args.scale, args.seed)
    print(
        f"ninapro_db1: {n_db1} files, {_du(out / 'ninapro_db1') / 1e6:.0f} MB, {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    print(
        f"wrote {out} ({_du(out) / 1e9:.2f} GB) in {time.perf_counter() - started:.0f} s; check it with "
        f"`vaenmf-data check {out}`",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
