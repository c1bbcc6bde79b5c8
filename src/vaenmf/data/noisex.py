"""NOISEX-92 noise recordings (``DATA_ROOT/noisex92``).

The official files are 235 s at 19.98 kHz, one MAT v5 file per noise holding one variable named after the
file (``factory1.mat`` -> ``factory1``); re-encoded ``.wav`` copies at other rates are common and accepted
too. The paper's two noises are ``factory1`` ("factory") and ``babble``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from vaenmf.data.audio import NOISEX_SAMPLE_RATE, read_audio
from vaenmf.data.features import SAMPLE_RATE
from vaenmf.errors import ConfigError, CorpusLayoutError

__all__ = ["NOISE_FILES", "find_noise_file", "load_noise"]

log = logging.getLogger(__name__)

#: Noise kind used in configs -> NOISEX-92 file stem.
NOISE_FILES = {"factory": "factory1", "babble": "babble"}
_SUFFIXES = (".mat", ".wav")


def find_noise_file(root: str | os.PathLike[str], kind: str) -> Path:
    """Locate the NOISEX-92 file for ``kind`` under ``root``.

    Looks for ``<stem>.mat`` / ``<stem>.wav`` (any case) directly in ``root`` and then one level of
    subfolders. When several match, a file directly in ``root`` wins, then ``.mat`` over ``.wav``, then
    the first in sorted path order; the choice is logged with the alternatives.

    Args:
        root: NOISEX-92 folder.
        kind: ``"factory"`` or ``"babble"``.

    Returns:
        Path of the file.

    Raises:
        ConfigError: If ``kind`` is unknown.
        CorpusLayoutError: If ``root`` is missing or holds no matching file (the message lists what was looked
            for and what is there).
    """
    if kind not in NOISE_FILES:
        raise ConfigError(f"unknown NOISEX-92 noise {kind!r}; expected one of {', '.join(NOISE_FILES)}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CorpusLayoutError(
            f"NOISEX-92 folder {root} does not exist; expected a folder holding "
            f"{NOISE_FILES[kind]}.mat or {NOISE_FILES[kind]}.wav (set data.noisex_root or DATA_ROOT)"
        )
    stem = NOISE_FILES[kind].lower()
    candidates: list[tuple[int, int, str, Path]] = []
    for depth, folder in [(0, root)] + [(1, d) for d in sorted(root.iterdir()) if d.is_dir()]:
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.stem.lower() == stem and f.suffix.lower() in _SUFFIXES:
                candidates.append((depth, _SUFFIXES.index(f.suffix.lower()), str(f), f))
    if not candidates:
        present = sorted(p.name for p in root.iterdir())[:20]
        raise CorpusLayoutError(
            f"no NOISEX-92 {kind!r} noise in {root}: looked for {stem}.mat / {stem}.wav (any case) there and in "
            f"its subfolders; found {present or 'an empty folder'}"
        )
    candidates.sort()
    chosen = candidates[0][3]
    if len(candidates) > 1:
        log.warning(
            "several NOISEX-92 %r files under %s; using %s (others: %s)",
            kind,
            root,
            chosen,
            ", ".join(str(c[3]) for c in candidates[1:]),
        )
    return chosen


def load_noise(
    root: str | os.PathLike[str],
    kind: str,
    target_sr: int = SAMPLE_RATE,
    mat_sample_rate: int = NOISEX_SAMPLE_RATE,
) -> torch.Tensor:
    """Load a NOISEX-92 noise as a mono float32 waveform at ``target_sr``.

    Args:
        root: NOISEX-92 folder (see :func:`find_noise_file`).
        kind: ``"factory"`` (``factory1``) or ``"babble"``.
        target_sr: Output sample rate (the pipeline's 16 kHz by default).
        mat_sample_rate: Rate of ``.mat`` files, which store none (NOISEX-92: 19980 Hz).

    Returns:
        The noise waveform in [-1, 1].

    Shape:
        - output: ``(time,)``.

    Raises:
        ConfigError, CorpusLayoutError: see :func:`find_noise_file`.
        AudioReadError: If the file cannot be read.
    """
    path = find_noise_file(root, kind)
    wave, _ = read_audio(path, target_sr=target_sr, mat_sample_rate=mat_sample_rate)
    return wave
