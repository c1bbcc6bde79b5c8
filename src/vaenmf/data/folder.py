"""A user's own speech corpus: a folder of audio files, one folder per speaker (``data=speech_folder``).

Layout::

    root/
      alice/            one folder per speaker (its name is the speaker id)
        take01.wav      audio files, at any depth inside it: WAV, FLAC, OGG, AIFF or SPHERE, any sample rate
        session2/b.flac (read with soundfile and resampled to 16 kHz, multi-channel averaged to mono)
      bob/
        ...

Hidden entries (``.DS_Store``, ``.git/``) and files of other suffixes (transcripts) are ignored. An audio file
directly in ``root``, a speaker folder without any audio file, or a root without speaker folders is refused
with one message naming the folder and the layout expected. The speaker split policy is
:func:`vaenmf.data.splits.fraction_speaker_split`.
"""

from __future__ import annotations

import os
from pathlib import Path

from vaenmf.errors import CorpusLayoutError

__all__ = ["SPEECH_SUFFIXES", "folder_utterances", "index_speaker_folders", "utterance_name"]

#: Audio files a speaker folder may hold (any letter case).
SPEECH_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".sph")
_LAYOUT = "one folder per speaker holding their recordings (root/<speaker>/<utterance>.wav, .flac, ...)"


def _audio(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in SPEECH_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def index_speaker_folders(root: str | os.PathLike[str], key: str = "data.root") -> dict[str, list[Path]]:
    """The audio files of each speaker folder under ``root``.

    Args:
        root: The corpus folder.
        key: The config key that named it, for messages.

    Returns:
        ``{speaker: [file, ...]}``, speakers and files in sorted order.

    Raises:
        CorpusLayoutError: ``root`` is not a folder; holds audio files directly (not in speaker folders); has no
            speaker folder; or a speaker folder holds no audio file (named, with what it holds).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CorpusLayoutError(
            f"{key}={root}: no such folder; expected a speech corpus folder with {_LAYOUT}"
        )
    loose = [p.name for p in sorted(root.iterdir()) if p.is_file() and p.suffix.lower() in SPEECH_SUFFIXES]
    if loose:
        shown = ", ".join(loose[:5]) + (f" and {len(loose) - 5} more" if len(loose) > 5 else "")
        raise CorpusLayoutError(
            f"{key}={root} holds audio files directly ({shown}); expected {_LAYOUT}: move each speaker's files "
            "into a folder named after the speaker"
        )
    speakers = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    if not speakers:
        raise CorpusLayoutError(f"{key}={root} has no speaker folders; expected {_LAYOUT}")
    out: dict[str, list[Path]] = {}
    for folder in speakers:
        files = _audio(folder)
        if not files:
            present = sorted(p.name for p in folder.iterdir())[:8]
            raise CorpusLayoutError(
                f"speaker folder {folder} holds no audio files ({', '.join(SPEECH_SUFFIXES)}, any case, at any "
                f"depth); found {present or 'nothing'}. Expected {_LAYOUT}; remove the folder or add its "
                "recordings"
            )
        out[folder.name] = files
    return out


def utterance_name(speaker: str, file: Path, speaker_folder: Path) -> str:
    """``<speaker>_<path inside the speaker folder without suffix, / as _>``: unique within the corpus."""
    inner = file.relative_to(speaker_folder).with_suffix("")
    return f"{speaker}_{'_'.join(inner.parts)}"


def folder_utterances(root: str | os.PathLike[str], key: str = "data.root") -> dict[str, dict[str, Path]]:
    """The utterances of each speaker of a folder corpus, by name (:func:`utterance_name`).

    Args:
        root: The corpus folder.
        key: The config key that named it, for messages.

    Returns:
        ``{speaker: {utterance name: file}}``, in the sorted order of :func:`index_speaker_folders`.

    Raises:
        CorpusLayoutError: See :func:`index_speaker_folders`; two files of one speaker that would get the same
            utterance name (``a.wav`` and ``a.flac``).
    """
    files = index_speaker_folders(root, key)
    out: dict[str, dict[str, Path]] = {}
    for speaker, paths in files.items():
        names = out[speaker] = {}
        for path in paths:
            name = utterance_name(speaker, path, Path(root).expanduser() / speaker)
            if name in names:
                raise CorpusLayoutError(
                    f"{names[name]} and {path} would both be utterance {name!r}; rename one (files of a speaker are "
                    "named by their path inside the speaker folder, without the suffix)"
                )
            names[name] = path
    return out
