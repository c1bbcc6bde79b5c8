"""Embedded demo EMG: known nonnegative synergies times smoothed Gamma activations, in Ninapro DB1's layout.

Each subject performs ``n_movements`` movements, ``n_repetitions`` times each, with rest in between (DB1's
protocol). Every movement of every subject has its own ``rank`` true synergies ``W`` (``channels x rank``, unit
L2 columns, each dominated by a few muscles); a repetition's activations are smooth bell-shaped envelopes (random
staggered peak and width per synergy) times Gamma-distributed amplitudes times a low-passed Gamma process, so activations
vary across repetitions the way recorded ones do. The EMG is ``W H`` times log-normal multiplicative noise plus
the electrodes' floor, so rest is near the floor and nothing is negative. Because ``W`` is known, tests can check
that a method recovers it.

Deterministic given the seed: every (subject, movement, repetition) has its own ``numpy`` ``SeedSequence``
stream, so one subject's data do not depend on how many others are generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal as sps

from vaenmf.data.ninapro import EMGRecording
from vaenmf.data.synthetic import stream_rng

#: The DB1 sample rate (the demo uses it too).
DEMO_EMG_SAMPLE_RATE = 100
#: DB1's quantisation floor of the rectified EMG (its most frequent value at rest).
EMG_FLOOR = 0.0024


@dataclass(frozen=True)
class DemoEMGSpec:
    """Size and noise of the generated corpus (the defaults run the demo study in about a minute)."""

    n_channels: int = 10
    n_movements: int = 12
    n_repetitions: int = 10
    rank: int = 4
    movement_seconds: float = 2.0
    rest_seconds: float = 1.0
    noise_sigma: float = 0.15
    sample_rate: int = DEMO_EMG_SAMPLE_RATE


def true_synergies(seed: int, subject: int, movement: int, spec: DemoEMGSpec = DemoEMGSpec()) -> np.ndarray:
    """The generating synergies of one subject's movement.

    Each synergy has 2-3 dominant muscles (Gamma(4) weights), mostly not shared with the other synergies, over a
    weak background on every muscle (Gamma(0.5) x 0.05), then unit L2 norm.

    Shape:
        output: ``(n_channels, rank)`` float64, nonnegative, unit-norm columns.
    """
    rng = stream_rng(seed, 1, subject, movement)
    W = rng.gamma(0.5, 1.0, size=(spec.n_channels, spec.rank)) * 0.05
    # Dominant muscles are dealt from a shuffled deck, so synergies share few of them (as recorded synergies
    # mostly do) and stay identifiable; when the deck runs out it is reshuffled.
    deck: list[int] = []
    for k in range(spec.rank):
        size = int(rng.integers(2, 4))
        if len(deck) < size:
            deck += [int(c) for c in rng.permutation(spec.n_channels) if c not in deck]
        dominant, deck = deck[:size], deck[size:]
        W[dominant, k] += rng.gamma(4.0, 0.25, size=size)
    return W / np.linalg.norm(W, axis=0, keepdims=True)


def _activations(rng: np.random.Generator, rank: int, n: int, sample_rate: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)
    H = np.empty((rank, n))
    # A 0.15 s moving average gives the slow fluctuation of recorded EMG envelopes.
    smoother = np.ones(max(1, int(0.15 * sample_rate))) / max(1, int(0.15 * sample_rate))
    # Synergies peak in turn (staggered centres with jitter), as the phases of a movement do; with the
    # independent Gamma fluctuations this keeps them identifiable from the data (NMF recovers them).
    order = rng.permutation(rank)
    for k in range(rank):
        centre = (order[k] + 0.5) / rank + rng.uniform(-0.1, 0.1)
        width = rng.uniform(0.1, 0.25)
        envelope = np.exp(-0.5 * ((t - centre) / width) ** 2)
        process = sps.lfilter(smoother, [1.0], rng.gamma(1.0, 1.0, size=n + smoother.size))[smoother.size :]
        H[k] = rng.gamma(4.0, 0.25) * envelope * process
    return H


def generate_emg_recording(
    seed: int, subject: int, spec: DemoEMGSpec = DemoEMGSpec()
) -> tuple[EMGRecording, dict[int, np.ndarray]]:
    """One subject's demo recording and the true synergies of each movement.

    Returns:
        The recording (movements numbered 1..n_movements, repetitions 1..n_repetitions, 0 = rest) and
        ``{movement: W_true (channels, rank)}``.
    """
    n_move = int(round(spec.movement_seconds * spec.sample_rate))
    n_rest = int(round(spec.rest_seconds * spec.sample_rate))
    chunks, movements, repetitions, synergies = [], [], [], {}
    for movement in range(1, spec.n_movements + 1):
        W = true_synergies(seed, subject, movement, spec)
        synergies[movement] = W
        for rep in range(1, spec.n_repetitions + 1):
            rng = stream_rng(seed, 2, subject, movement, rep)
            active = W @ _activations(rng, spec.rank, n_move, spec.sample_rate)
            noisy = active * rng.lognormal(0.0, spec.noise_sigma, size=active.shape)
            rest = rng.gamma(2.0, 0.002, size=(spec.n_channels, n_rest))
            chunks += [noisy + EMG_FLOOR, rest + EMG_FLOOR]
            movements += [np.full(n_move, movement), np.zeros(n_rest, dtype=np.int64)]
            repetitions += [np.full(n_move, rep), np.zeros(n_rest, dtype=np.int64)]
    recording = EMGRecording(
        subject=int(subject),
        emg=np.concatenate(chunks, axis=1).astype(np.float32),
        movement=np.concatenate(movements).astype(np.int64),
        repetition=np.concatenate(repetitions).astype(np.int64),
        sample_rate=spec.sample_rate,
        source=f"demo EMG (seed {seed}, subject {subject})",
    )
    return recording, synergies


def write_ninapro_mat(path: str | Path, recording: EMGRecording, exercise: int = 1) -> Path:
    """Write a recording as a DB1-style MAT v5 file (``emg`` ``(N, channels)``, labels ``(N, 1)`` uint8).

    Movement labels are written exercise-local (DB1 restarts them at 1 in every exercise file).
    """
    import scipy.io

    from vaenmf.data.ninapro import EXERCISE_OFFSETS

    offset = EXERCISE_OFFSETS[exercise]
    local = np.where(recording.movement > 0, recording.movement - offset, 0)
    labels = {
        "stimulus": local,
        "restimulus": local,
        "repetition": recording.repetition,
        "rerepetition": recording.repetition,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(
        path,
        {
            "emg": recording.emg.T.astype(np.float64),
            **{k: v.astype(np.uint8).reshape(-1, 1) for k, v in labels.items()},
            "subject": np.array([[recording.subject]], dtype=np.uint8),
            "exercise": np.array([[exercise]], dtype=np.uint8),
        },
    )
    return path
