"""TIMIT indexing and the paper's utterance selections (``DATA_ROOT/timit``).

Accepted layouts (names in any case; ``.WAV`` files may be NIST SPHERE or RIFF, the reader tells them apart):

- the LDC tree ``[TIMIT/]{TRAIN,TEST}/DR1..DR8/<SPEAKER>/<UTT>.WAV``, also below a ``data/`` folder (as in
  some redistributions), with or without extra ``<UTT>.WAV.wav`` RIFF copies (deduplicated, the first in
  sorted order is kept);
- the NLTK sample layout ``drN-<speaker>/<utt>.wav`` (no TRAIN/TEST split: ``split`` is None).

:func:`scan_timit` reports what it found (layout, skipped duplicates, unexpected entries, speaker folders
without audio) for ``vaenmf-data check``; :func:`index_timit` is the same walk, refusing what a job cannot use.

Names are normalised to upper case (``TRAIN``, ``DR1``, ``MDAB0``, ``SI1264``), as in the LDC documentation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vaenmf.errors import CorpusLayoutError

__all__ = [
    "CORE_TEST_SPEAKERS_BY_DIALECT",
    "CORE_TEST_SPEAKERS",
    "DEV_SPEAKERS_BY_DIALECT",
    "DEV_SPEAKERS",
    "CORE_TEST_UTTERANCES",
    "DEV_UTTERANCES",
    "TRAIN_SPEAKERS",
    "TimitScan",
    "TimitUtterance",
    "find_timit_root",
    "scan_timit",
    "index_timit",
    "dictionary_pool",
    "core_test_set",
    "development_set",
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

#: The development (validation) set of the Kaldi TIMIT recipe: 50 TEST speakers outside the core test set
#: (Halberstadt 1998), 400 SI/SX utterances. The speaker list is Kaldi's ``egs/timit/s5/conf/dev_spk.list``
#: (kaldi-asr/kaldi); the dialect regions are those of the LDC tree (``TEST/DR<n>/<SPEAKER>``).
DEV_SPEAKERS_BY_DIALECT: dict[str, tuple[str, ...]] = {
    "DR1": ("FAKS0", "FDAC1", "FJEM0", "MJSW0", "MREB0"),
    "DR2": ("MGWT0", "MJAR0", "MMDB1", "MMDM2", "MPDF0"),
    "DR3": (
        "FCMH0", "FKMS0", "MBDG0", "MBWM0", "MCSH0", "MGJF0", "MGLB0",
        "MMJR0", "MMWH0", "MRTK0", "MTAA0", "MTDT0", "MTHC0", "MWJG0",
    ),
    "DR4": ("FADG0", "FDMS0", "FEDW0", "FGJD0", "FJMG0", "FNMR0", "FREW0", "FSEM0", "MBNS0", "MDLS0", "MROA0", "MTEB0"),
    "DR5": ("FCAL1", "FMAH0", "MRWS1"),
    "DR6": ("FDRW0", "MJFC0", "MRJR0"),
    "DR7": ("FMML0", "MDLF0", "MDVC0", "MERS0", "MRCS0", "MRJM4"),
    "DR8": ("FJSJ0", "MAJC0"),
}  # fmt: skip
DEV_SPEAKERS: tuple[str, ...] = tuple(s for group in DEV_SPEAKERS_BY_DIALECT.values() for s in group)
#: The protocol's sizes (LDC distribution): SI/SX utterances of the core test set and of the development set, and
#: the TRAIN speakers (whose SI/SX utterances make the speech dictionary and the training mixtures).
CORE_TEST_UTTERANCES = 192
DEV_UTTERANCES = 400
TRAIN_SPEAKERS = 462

_SPLITS = ("TRAIN", "TEST")
_DIALECT_RE = re.compile(r"^dr[1-8]$", re.IGNORECASE)
_SPEAKER_RE = re.compile(r"^[mf][a-z]{3}[0-9]$", re.IGNORECASE)
_SAMPLE_DIR_RE = re.compile(r"^(dr[1-8])-([mf][a-z]{3}[0-9])$", re.IGNORECASE)
_UTT_RE = re.compile(r"^(s[aix][0-9]+)\.wav", re.IGNORECASE)
# Transcription files beside each utterance in the LDC tree (and the NLTK sample).
_COMPANION_RE = re.compile(r"^s[aix][0-9]+\.(phn|wrd|txt)$", re.IGNORECASE)


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


@dataclass
class TimitScan:
    """What :func:`scan_timit` found under a TIMIT folder.

    Attributes:
        given: The folder asked for.
        root: The folder holding ``TRAIN``/``TEST`` (or the sample's ``drN-<speaker>`` folders).
        layout: A description, e.g. ``"LDC tree, upper case"``, ``"Kaggle copy: LDC tree below data/, upper
            case, with .WAV.wav RIFF duplicates"``, ``"NLTK sample: drN-<speaker>/ folders, no TRAIN/TEST
            split"``.
        has_split: Whether the tree has ``TRAIN``/``TEST``.
        utterances: Every utterance, sorted by (split, dialect, speaker, utterance).
        speakers_without_audio: Speaker folders holding no utterance audio.
        duplicates: Second copies of an utterance (``SA1.WAV.wav`` beside ``SA1.WAV``), skipped.
        unexpected: Entries inside the split/dialect/speaker folders that are not TIMIT names (skipped).
    """

    given: Path
    root: Path
    layout: str
    has_split: bool
    utterances: list[TimitUtterance] = field(default_factory=list)
    speakers_without_audio: list[Path] = field(default_factory=list)
    duplicates: list[Path] = field(default_factory=list)
    unexpected: list[Path] = field(default_factory=list)


def _utterances_in(
    folder: Path, split: str | None, dialect: str, speaker: str, scan: TimitScan | None = None
) -> list[TimitUtterance]:
    found: dict[str, TimitUtterance] = {}
    for f in sorted(folder.iterdir()):
        m = _UTT_RE.match(f.name)
        # Only '<UTT>.wav' and '<UTT>.wav.wav' style names; skip .phn/.wrd/.txt and stray files.
        if not f.is_file() or m is None or not f.name.lower().endswith(".wav"):
            if scan is not None and not (f.is_file() and _COMPANION_RE.match(f.name)):
                scan.unexpected.append(f)
            continue
        utt = m.group(1).upper()
        if utt not in found:
            found[utt] = TimitUtterance(split, dialect.upper(), speaker.upper(), utt, f)
        elif scan is not None:
            scan.duplicates.append(f)
    return list(found.values())


def _case_of(names: Iterable[str]) -> str:
    letters = [n for n in names if any(c.isalpha() for c in n)]
    if all(n == n.upper() for n in letters):
        return "upper case"
    if all(n == n.lower() for n in letters):
        return "lower case"
    return "mixed case"


def scan_timit(root: str | os.PathLike[str]) -> TimitScan:
    """Walk a TIMIT tree and report what is there, without refusing anything but a missing or unknown folder.

    Args:
        root: The TIMIT folder, or a folder containing it (see the module docstring for the layouts).

    Returns:
        A :class:`TimitScan`; its ``utterances`` are what :func:`index_timit` returns.

    Raises:
        CorpusLayoutError: If the folder is missing or does not look like TIMIT.
    """
    given = Path(root).expanduser()
    base = find_timit_root(given)
    has_split = _has_split(base)
    scan = TimitScan(given=given, root=base, layout="", has_split=has_split)
    names: list[str] = []
    if has_split:
        for split in _SPLITS:
            split_dir = _child(base, split)
            if split_dir is None:
                continue
            names.append(split_dir.name)
            for dr in sorted(split_dir.iterdir()):
                if not (dr.is_dir() and _DIALECT_RE.match(dr.name)):
                    scan.unexpected.append(dr)
                    continue
                names.append(dr.name)
                for spk in sorted(dr.iterdir()):
                    if not (spk.is_dir() and _SPEAKER_RE.match(spk.name)):
                        scan.unexpected.append(spk)
                        continue
                    names.append(spk.name)
                    utts = _utterances_in(spk, split, dr.name, spk.name, scan)
                    if not utts:
                        scan.speakers_without_audio.append(spk)
                    scan.utterances += utts
                    names += [u.path.name.split(".")[0] for u in utts]
    else:
        for d in sorted(base.iterdir()):
            m = _SAMPLE_DIR_RE.match(d.name)
            if d.is_dir() and m:
                utts = _utterances_in(d, None, m.group(1), m.group(2), scan)
                if not utts:
                    scan.speakers_without_audio.append(d)
                scan.utterances += utts
    scan.utterances.sort(key=lambda u: (u.split or "", u.dialect, u.speaker, u.utt))
    if not has_split:
        scan.layout = "NLTK sample: drN-<speaker>/ folders, no TRAIN/TEST split"
    else:
        below_data = any(part.lower() == "data" for part in base.relative_to(given).parts)
        case = _case_of(names)
        if below_data and scan.duplicates:
            scan.layout = f"Kaggle copy: LDC tree below data/, {case}, with .WAV.wav RIFF duplicates"
        else:
            scan.layout = f"LDC tree{' below data/' if below_data else ''}, {case}"
            if scan.duplicates:
                scan.layout += ", with .WAV.wav RIFF duplicates"
    return scan


def index_timit(root: str | os.PathLike[str]) -> list[TimitUtterance]:
    """Index every utterance of a TIMIT tree.

    Args:
        root: The TIMIT folder, or a folder containing it (see the module docstring for the layouts).

    Returns:
        Utterances sorted by (split, dialect, speaker, utterance).

    Raises:
        CorpusLayoutError: If the folder is missing, does not look like TIMIT, holds no ``.wav`` files, or has
            a speaker folder without audio (a partial copy: the speaker sets would silently differ).
    """
    scan = scan_timit(root)
    if not scan.utterances:
        empty = f" (speaker folders without audio: {_shown(scan.speakers_without_audio)})"
        raise CorpusLayoutError(
            f"no TIMIT utterances found under {scan.root}: expected <SPLIT>/DR1..DR8/<SPEAKER>/<UTT>.WAV files "
            f"(UTT = SA1, SI1264, SX4, ...){empty if scan.speakers_without_audio else ''}"
        )
    if scan.speakers_without_audio:
        raise CorpusLayoutError(
            f"TIMIT speaker folder {_shown(scan.speakers_without_audio)} holds no audio: expected "
            "<UTT>.WAV files (SA1, SA2, SI<n>, SX<n>; any case, SPHERE or RIFF); restore the files or remove "
            "the folder"
        )
    return scan.utterances


def _shown(paths: list[Path], limit: int = 5) -> str:
    text = ", ".join(str(p) for p in paths[:limit])
    return text + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def dictionary_pool(utts: Iterable[TimitUtterance]) -> list[TimitUtterance]:
    """TRAIN SI and SX utterances (the SA sentences are read by every speaker and would bias a dictionary).

    For the unsplit sample layout (``split`` None) every SI/SX utterance qualifies.
    """
    return [u for u in utts if u.split in ("TRAIN", None) and u.kind in ("SI", "SX")]


def core_test_set(utts: Iterable[TimitUtterance]) -> list[TimitUtterance]:
    """The core test set: SI and SX utterances of the 24 :data:`CORE_TEST_SPEAKERS` under TEST (192 in full)."""
    core = set(CORE_TEST_SPEAKERS)
    return [u for u in utts if u.split == "TEST" and u.speaker in core and u.kind in ("SI", "SX")]


def development_set(utts: Iterable[TimitUtterance]) -> list[TimitUtterance]:
    """The development set: SI and SX utterances of the 50 :data:`DEV_SPEAKERS` under TEST (400 in full)."""
    dev = set(DEV_SPEAKERS)
    return [u for u in utts if u.split == "TEST" and u.speaker in dev and u.kind in ("SI", "SX")]


def speakers_of(utts: Iterable[TimitUtterance]) -> list[str]:
    """Distinct speakers, sorted."""
    return sorted({u.speaker for u in utts})
