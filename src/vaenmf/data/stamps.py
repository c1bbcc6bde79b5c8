"""Stamps of input files: what a file is, cheaply (its resolved path, size and modification time in ns).

A stamp changes when the file is replaced, rewritten or touched, and costs one ``stat``. Job folders use them for
the files a config names by path (a noise file, a folder corpus: :func:`vaenmf.tasks.inputs.input_stamps`), so a
complete result is not reused after the user changed their data.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["file_stamp", "stamp_digest"]


def file_stamp(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    """``(resolved path, size in bytes, mtime in ns)`` of a file.

    Raises:
        OSError: If the file cannot be stat'ed.
    """
    path = Path(path).expanduser().resolve()
    info = path.stat()
    return str(path), int(info.st_size), int(info.st_mtime_ns)


def stamp_digest(paths: Iterable[str | os.PathLike[str]]) -> str:
    """A short hash of the stamps of ``paths`` (in sorted order; a file that cannot be stat'ed stamps as absent)."""
    stamps = []
    for path in sorted({str(Path(p).expanduser().resolve()) for p in paths}):
        try:
            stamps.append(file_stamp(path))
        except OSError:
            stamps.append((path, -1, -1))
    return hashlib.sha256(json.dumps(stamps).encode()).hexdigest()[:16]
