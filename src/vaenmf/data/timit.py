"""TIMIT indexing and the paper's utterance selections (``DATA_ROOT/timit``).

Accepted layouts (names in any case; ``.WAV`` files may be NIST SPHERE or RIFF, the reader tells them apart):

- the LDC tree ``[TIMIT/]{TRAIN,TEST}/DR1..DR8/<SPEAKER>/<UTT>.WAV``, also below a ``data/`` folder (as in
  some redistributions), with or without extra ``<UTT>.WAV.wav`` RIFF copies (deduplicated, the first in
  sorted order is kept);
- the NLTK sample layout ``drN-<speaker>/<utt>.wav`` (no TRAIN/TEST split: ``split`` is None).

Names are normalised to upper case (``TRAIN``, ``DR1``, ``MDAB0``, ``SI1264``), as in the LDC documentation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vaenmf.errors import CorpusLayoutError

__all__ = [
    "CORE_TEST_SPEAKERS_BY_DIALECT",
    "CORE_TEST_SPEAKERS",
    "TimitUtterance",
    "find_timit_root",
    "index_timit",
    "dictionary_pool",
    "core_test_set",
    "speakers_of",
]

#: The TIMIT core test set: 24 speakers (2 male, 1 female per dialect region), all under TEST/.
CORE_TEST_SPEAKERS_BY_DIALECT: dict[str, tuple[str, ...]] = {
    "DR1": ("MDAB0", "MWBT0", "FELC0"),
    "DR2": ("MTAS1", "MWEW0", "FPAS0"),
    "DR3": ("MJMP0", "MLNT0", "FPKT0"),
    "DR4": ("MLLL0", "MTLS0", "FJLM0"),
    "DR5": ("MBPM0", "MKLT0", "FNLP0"),
    "DR6": ("MCMJ0", "MJDH0", "FMGD0"),
    "DR7": ("MGRT0", "MNJM0", "FDHC0"),
    "DR8": ("MJLN0", "MPAM0", "FMLD0"),
}
CORE_TEST_SPEAKERS: tuple[str, ...] = tuple(
    s for group in CORE_TEST_SPEAKERS_BY_DIALECT.values() for s in group
)

_SPLITS = ("TRAIN", "TEST")
_DIALECT_RE = re.compile(r"^dr[1-8]$", re.IGNORECASE)
_SPEAKER_RE = re.compile(r"^[mf][a-z]{3}[0-9]$", re.IGNORECASE)
_SAMPLE_DIR_RE = re.compile(r"^(dr[1-8])-([mf][a-z]{3}[0-9])$", re.IGNORECASE)
_UTT_RE = re.compile(r"^(s[aix][0-9]+)\.wav", re.IGNORECASE)


@dataclass(frozen=True)
class TimitUtterance:
    """One TIMIT utterance.

    Attributes:
        split: ``"TRAIN"``, ``"TEST"``, or None for the NLTK sample layout.
        dialect: ``"DR1"`` ... ``"DR8"``.
        speaker: Speaker id, e.g. ``"MDAB0"`` (first letter = gender).
        utt: Utterance id, e.g. ``"SA1"``, ``"SI1264"``, ``"SX4"``.
        path: The audio file.
    """

    split: str | None
    dialect: str
    speaker: str
    utt: str
    path: Path

    @property
    def kind(self) -> str:
        """Sentence type: ``"SA"`` (dialect), ``"SI"`` (diverse) or ``"SX"`` (compact)."""
        return self.utt[:2]

    @property
    def name(self) -> str:
        """Unique name, e.g. ``"DR1_MDAB0_SI1264"``."""
        return f"{self.dialect}_{self.speaker}_{self.utt}"


def _child(folder: Path, name: str) -> Path | None:
    """Case-insensitive lookup of a subfolder."""
    for d in folder.iterdir():
        if d.is_dir() and d.name.lower() == name.lower():
            return d
    return None


def _has_split(folder: Path) -> bool:
    return any(_child(folder, s) is not None for s in _SPLITS)


def _has_sample_layout(folder: Path) -> bool:
    return any(d.is_dir() and _SAMPLE_DIR_RE.match(d.name) for d in folder.iterdir())


def find_timit_root(root: str | os.PathLike[str]) -> Path:
    """Find the folder holding ``TRAIN``/``TEST`` (or the sample's ``drN-<speaker>`` folders).

    Tries ``root``, ``root/TIMIT``, ``root/data``, ``root/TIMIT/data`` and ``root/TIMIT/TIMIT`` (any case).

    Raises:
        CorpusLayoutError: If ``root`` is missing or none of those looks like TIMIT.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CorpusLayoutError(
            f"TIMIT folder {root} does not exist; expected the LDC tree [TIMIT/]{{TRAIN,TEST}}/DR1..DR8/... "
            "(set data.timit_root or DATA_ROOT)"
        )
    candidates = [root]
    for first in ("TIMIT", "data"):
        sub = _child(root, first)
        if sub is not None:
            candidates.append(sub)
            for second in ("data", "TIMIT"):
                subsub = _child(sub, second)
                if subsub is not None:
                    candidates.append(subsub)
    for folder in candidates:
        if _has_split(folder) or _has_sample_layout(folder):
            return folder
    present = sorted(p.name for p in root.iterdir())[:20]
    raise CorpusLayoutError(
        f"{root} does not look like TIMIT: expected [TIMIT/]{{TRAIN,TEST}}/DR1..DR8/<SPEAKER>/<UTT>.WAV (any case) "
        f"or the NLTK sample layout drN-<speaker>/<utt>.wav; found {present or 'an empty folder'}"
    )


def _utterances_in(folder: Path, split: str | None, dialect: str, speaker: str) -> list[TimitUtterance]:
    found: dict[str, TimitUtterance] = {}
    for f in sorted(folder.iterdir()):
        m = _UTT_RE.match(f.name)
        # Only '<UTT>.wav' and '<UTT>.wav.wav' style names; skip .phn/.wrd/.txt and stray files.
        if not f.is_file() or m is None or not f.name.lower().endswith(".wav"):
            continue
        utt = m.group(1).upper()
        if utt not in found:
            found[utt] = TimitUtterance(split, dialect.upper(), speaker.upper(), utt, f)
    return list(found.values())


def index_timit(root: str | os.PathLike[str]) -> list[TimitUtterance]:
    """Index every utterance of a TIMIT tree.

    Args:
        root: The TIMIT folder, or a folder containing it (see the module docstring for the layouts).

    Returns:
        Utterances sorted by (split, dialect, speaker, utterance).

    Raises:
        CorpusLayoutError: If the folder is missing, does not look like TIMIT, or holds no ``.wav`` files.
    """
    base = find_timit_root(root)
    utts: list[TimitUtterance] = []
    if _has_split(base):
        for split in _SPLITS:
            split_dir = _child(base, split)
            if split_dir is None:
                continue
            for dr in sorted(d for d in split_dir.iterdir() if d.is_dir() and _DIALECT_RE.match(d.name)):
                for spk in sorted(d for d in dr.iterdir() if d.is_dir() and _SPEAKER_RE.match(d.name)):
                    utts += _utterances_in(spk, split, dr.name, spk.name)
    else:
        for d in sorted(base.iterdir()):
            m = _SAMPLE_DIR_RE.match(d.name)
            if d.is_dir() and m:
                utts += _utterances_in(d, None, m.group(1), m.group(2))
    if not utts:
        raise CorpusLayoutError(
            f"no TIMIT utterances found under {base}: expected <SPLIT>/DR1..DR8/<SPEAKER>/<UTT>.WAV files "
            "(UTT = SA1, SI1264, SX4, ...)"
        )
    utts.sort(key=lambda u: (u.split or "", u.dialect, u.speaker, u.utt))
    return utts


def dictionary_pool(utts: Iterable[TimitUtterance]) -> list[TimitUtterance]:
    """TRAIN SI and SX utterances (the SA sentences are read by every speaker and would bias a dictionary).

    For the unsplit sample layout (``split`` None) every SI/SX utterance qualifies.
    """
    return [u for u in utts if u.split in ("TRAIN", None) and u.kind in ("SI", "SX")]


def core_test_set(utts: Iterable[TimitUtterance]) -> list[TimitUtterance]:
    """The core test set: SI and SX utterances of the 24 :data:`CORE_TEST_SPEAKERS` under TEST (192 in full)."""
    core = set(CORE_TEST_SPEAKERS)
    return [u for u in utts if u.split == "TEST" and u.speaker in core and u.kind in ("SI", "SX")]


def speakers_of(utts: Iterable[TimitUtterance]) -> list[str]:
    """Distinct speakers, sorted."""
    return sorted({u.speaker for u in utts})
