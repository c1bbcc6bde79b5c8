"""Features prepared once: resampled noise, speech dictionary frames and training-mixture spectrograms on disk.

The jobs of a sweep read the same corpora and transform them the same way (one speech dictionary for every
noise and method, one resampled NOISEX-92 recording for every method, one set of training-mixture spectrograms
for the DNN, DRNN and DNMF columns of one noise). :class:`FeatureCache` keeps each such result in one file under
``paths.cache_dir/features`` (``outputs/cache/features`` by default), keyed by a hash of

- the input files it was computed from, each by its stamp (resolved path, size, mtime in ns:
  :func:`vaenmf.data.stamps.file_stamp`), or for the demo corpora by what generates them (seed and sizes), so a
  changed file makes a new key and its old entry is never read again;
- the settings that determine it (frame counts, silence threshold, seed, SNRs, noise parts, sample rates);
- the source code of :mod:`vaenmf.data` (a change of the front end or of the mixing makes new keys).

Writes are atomic (:func:`vaenmf.atomic.save_torch_atomic`: a temporary file renamed into place), so a job never
reads a partial entry, however many jobs write the same one at once (the last rename wins; the contents are the
same). An entry records its key and is used only under it; an unreadable entry is recomputed, with a warning.
The results are the same with and without the cache (the tensors are stored as computed, float32, exactly).
``cache_features=false`` turns it off for a job.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from vaenmf.atomic import save_torch_atomic

__all__ = ["FeatureCache", "data_code_hash"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@functools.lru_cache(maxsize=1)
def data_code_hash() -> str:
    """Hash of the source code of :mod:`vaenmf.data` (every ``.py`` file of the package folder)."""
    digest = hashlib.sha256()
    folder = Path(__file__).resolve().parent
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class FeatureCache:
    """Computed features on disk, one ``<kind>-<key>.pt`` file each (see the module docstring).

    Args:
        root: The cache folder (created when the first entry is written).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def key(self, kind: str, parts: Any) -> str:
        """The key of an entry: a hash of its kind, what determines it (JSON-able ``parts``) and the data code."""
        payload = json.dumps([kind, parts, data_code_hash()], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:24]

    def path(self, kind: str, key: str) -> Path:
        """Where the entry of ``kind`` under ``key`` lives."""
        return self.root / f"{kind}-{key}.pt"

    def load(self, kind: str, key: str) -> Any | None:
        """The value filed under ``key``, or None when there is none (or it is unreadable, or filed under another
        key)."""
        path = self.path(kind, key)
        if not path.is_file():
            return None
        import torch

        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a corrupt entry is recomputed, never fatal
            log.warning("ignoring unreadable cached features %s (%s)", path, err)
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or "value" not in entry:
            log.warning("ignoring cached features %s: it does not record the key it is filed under", path)
            return None
        return entry["value"]

    def save(self, kind: str, key: str, value: Any) -> Path:
        """File ``value`` (tensors, lists, dicts and plain values) under ``key``, atomically."""
        return save_torch_atomic(self.path(kind, key), {"key": key, "value": value})

    def get(self, kind: str, parts: Any, compute: Callable[[], T]) -> T:
        """The cached value of ``kind`` for ``parts``, computed (and filed) when there is none.

        Args:
            kind: What it is (``noise``, ``speech_frames``, ``train_spectra``): the file-name prefix.
            parts: Everything that determines the value (JSON-able: stamps, settings).
            compute: Makes the value when it is not cached.
        """
        key = self.key(kind, parts)
        value = self.load(kind, key)
        if value is not None:
            log.debug("cached %s %s", kind, key)
            return value
        value = compute()
        try:
            self.save(kind, key, value)
        except OSError as err:  # a full or read-only disk costs the cache, not the job
            log.warning("could not cache %s in %s (%s)", kind, self.root, err)
        return value
