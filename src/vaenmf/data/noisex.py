"""NOISEX-92 noise recordings (``DATA_ROOT/noisex92``).

The official files are 235 s at 19.98 kHz, one MAT v5 file per noise holding one variable named after the
file (``factory1.mat`` -> ``factory1``); re-encoded ``.wav`` copies at other rates are common and accepted
too. The paper's two noises are ``factory1`` ("factory") and ``babble``; every other noise of the corpus
(``white``, ``pink``, ``f16``, ``destroyerengine``, ...) is found by its file name.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from vaenmf.data.audio import NOISEX_SAMPLE_RATE, read_audio
from vaenmf.errors import ConfigError, CorpusLayoutError

if TYPE_CHECKING:
    import torch

__all__ = [
    "NOISE_FILES",
    "NOISE_SUFFIXES",
    "find_noise_file",
    "list_noise_files",
    "noise_names",
    "noise_candidates",
    "load_noise",
]

log = logging.getLogger(__name__)

#: Noise kind used in configs -> NOISEX-92 file stem.
NOISE_FILES = {"factory": "factory1", "babble": "babble"}
#: File kinds looked for, in order of preference.
NOISE_SUFFIXES = (".mat", ".wav", ".flac")
_SUFFIXES = NOISE_SUFFIXES
# The pipeline rate (vaenmf.data.features.SAMPLE_RATE), spelled out so that importing this module (and the
# header-only `vaenmf-data check`) does not import torch; a test keeps the two equal.
_PIPELINE_RATE = 16000


def list_noise_files(root: str | os.PathLike[str]) -> list[Path]:
    """Every ``.mat``/``.wav`` file (any case) directly in ``root`` and in its immediate subfolders.

    These are the files :func:`find_noise_file` chooses from, in the order it prefers them: files directly in
    ``root`` first, then ``.mat`` before ``.wav``, then sorted path order.

    Raises:
        CorpusLayoutError: If ``root`` is not a folder.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CorpusLayoutError(
            f"NOISEX-92 folder {root} does not exist; expected a folder holding babble.mat, factory1.mat, ... "
            "or .wav copies (set data.noisex_root or DATA_ROOT)"
        )
    found: list[tuple[int, int, str, Path]] = []
    for depth, folder in [(0, root)] + [(1, d) for d in sorted(root.iterdir()) if d.is_dir()]:
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.suffix.lower() in _SUFFIXES:
                found.append((depth, _SUFFIXES.index(f.suffix.lower()), str(f), f))
    return [c[3] for c in sorted(found)]


def noise_candidates(root: str | os.PathLike[str], stem: str) -> list[Path]:
    """The files of :func:`list_noise_files` whose stem is ``stem`` (any case), the preferred one first."""
    return [f for f in list_noise_files(root) if f.stem.lower() == stem.lower()]


def noise_names(root: str | os.PathLike[str]) -> list[str]:
    """The noise names a folder offers (the stems of :func:`list_noise_files`, lower case, sorted, once each).

    Raises:
        CorpusLayoutError: If ``root`` is not a folder.
    """
    return sorted({f.stem.lower() for f in list_noise_files(root)})


def find_noise_file(root: str | os.PathLike[str], kind: str) -> Path:
    """Locate the NOISEX-92 file of the noise ``kind`` under ``root``.

    ``kind`` is a file name (``white``, ``pink``, ``f16``, ``factory2``, ... : any ``<kind>.mat`` or
    ``<kind>.wav``), or one of the paper's names (:data:`NOISE_FILES`: ``factory`` is ``factory1``). Looks for
    ``<stem>.mat`` / ``<stem>.wav`` (any case) directly in ``root`` and then one level of subfolders. When several
    match, a file directly in ``root`` wins, then ``.mat`` over ``.wav``, then the first in sorted path order; the
    choice is logged with the alternatives.

    Args:
        root: NOISEX-92 folder.
        kind: The noise's name.

    Returns:
        Path of the file.

    Raises:
        ConfigError: If ``kind`` is not a name (empty, or with a path separator).
        CorpusLayoutError: If ``root`` is missing or holds no matching file (the message lists what was looked
            for and the noise names the folder has).
    """
    if not kind or "/" in kind or "\\" in kind:
        raise ConfigError(f"a NOISEX-92 noise is named by its file name (white, factory1, ...), got {kind!r}")
    stem = NOISE_FILES.get(kind, kind).lower()
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CorpusLayoutError(
            f"NOISEX-92 folder {root} does not exist; expected a folder holding "
            f"{stem}.mat, {stem}.wav or {stem}.flac (set data.noisex_root or DATA_ROOT)"
        )
    candidates = noise_candidates(root, stem)
    if not candidates:
        names = noise_names(root)
        present = sorted(p.name for p in root.iterdir())[:20]
        found = (
            f"noises found there: {', '.join(names)} (files: {', '.join(present)})"
            if names
            else f"found {present or 'an empty folder'}"
        )
        raise CorpusLayoutError(
            f"no NOISEX-92 {kind!r} noise in {root}: looked for {stem}.mat / {stem}.wav / {stem}.flac (any case) there and in "
            f"its subfolders; {found} (noise= takes one of those names, factory for factory1, "
            "pooled:<name>+<name> for a pool, or the path of an audio file)"
        )
    chosen = candidates[0]
    if len(candidates) > 1:
        log.warning(
            "several NOISEX-92 %r files under %s; using %s (others: %s)",
            kind,
            root,
            chosen,
            ", ".join(str(c) for c in candidates[1:]),
        )
    return chosen


def load_noise(
    root: str | os.PathLike[str],
    kind: str,
    target_sr: int = _PIPELINE_RATE,
    mat_sample_rate: int = NOISEX_SAMPLE_RATE,
) -> torch.Tensor:
    """Load a NOISEX-92 noise as a mono float32 waveform at ``target_sr``.

    Args:
        root: NOISEX-92 folder (see :func:`find_noise_file`).
        kind: The noise's name (:func:`find_noise_file`: ``factory`` is ``factory1``, ``white``, ...).
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
