"""Atomic file writes: a reader sees the previous file or the complete new one, never a part of it.

Every file the package writes for another process to read (``metrics.json``, cached dictionaries, a synergy
job's finished movements, report tables and figures) goes through :func:`_write_atomic`: the content is written
to a temporary file in the target's folder (so that the final rename stays on one file system), flushed and
fsynced, then renamed over the target with ``os.replace``, which POSIX guarantees to be atomic. The temporary
file is removed on any failure, including ``KeyboardInterrupt`` and the ``SystemExit`` of a requeued job.

The temporary file is created with mode ``0o666`` so that the kernel applies the user's umask, as it does for
any ordinary ``open(path, "w")``: on a cluster with umask 002 a results folder stays readable and writable by
the group. (``tempfile.mkstemp`` would create it 0600, and ``os.replace`` keeps that mode.)
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

__all__ = [
    "save_figure_atomic",
    "save_npz_atomic",
    "save_torch_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

# Attempts at an unused temporary name; a collision of 64 random bits is already all but impossible.
_NAME_ATTEMPTS = 100


def _create_temporary(path: Path) -> tuple[int, Path]:
    """Create a new hidden file beside ``path``, mode ``0o666 & ~umask``; return its descriptor and path."""
    for _ in range(_NAME_ATTEMPTS):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            # O_EXCL: never adopt a file another writer created; 0o666: the kernel applies the umask.
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}")


def _write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Replace ``path`` by what ``write`` writes to a binary file object, atomically.

    Args:
        path: Target file; its folder is created when missing.
        write: Writes the whole content to the open temporary file (it must not close it).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            # Without the fsync a crash shortly after the rename can leave an empty file under the final name.
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see the module docstring); returns ``path``."""
    return _write_atomic(path, lambda fh: fh.write(text.encode(encoding)))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON (with a final newline) to ``path`` atomically; returns ``path``.

    NaN and infinities are written as ``NaN``/``Infinity`` (Python's JSON reads them back); numpy scalars and
    arrays as numbers and lists; anything else JSON cannot encode as its ``str``.
    """
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default, allow_nan=True) + "\n"
    return write_text_atomic(path, text)


def _json_default(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def save_torch_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` atomically; returns ``path``."""
    import torch  # deferred: the report writes files without needing torch

    return _write_atomic(path, lambda fh: torch.save(obj, fh))


def save_npz_atomic(path: str | os.PathLike[str], arrays: Mapping[str, Any]) -> Path:
    """``numpy.savez_compressed`` of ``arrays`` (name -> array) to ``path`` atomically; returns ``path``.

    Shape:
        - arrays: any shapes; each is stored under its name.
    """
    import numpy as np

    return _write_atomic(path, lambda fh: np.savez_compressed(fh, **arrays))


def save_figure_atomic(path: str | os.PathLike[str], figure: Any, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib figure to ``path`` atomically, in the format its suffix names (``.png``, ``.pdf``).

    Args:
        path: Target file; the format is taken from its suffix.
        figure: A ``matplotlib.figure.Figure``.
        **savefig_kwargs: Passed to ``Figure.savefig`` (e.g. ``dpi``).

    Returns:
        ``path``.
    """
    fmt = Path(path).suffix.lstrip(".")
    return _write_atomic(path, lambda fh: figure.savefig(fh, format=fmt, **savefig_kwargs))
