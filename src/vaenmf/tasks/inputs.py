"""The user's own input files a job's config names by path, stamped (:mod:`vaenmf.data.stamps`).

The config hash covers a path, not what the file holds. So that a job folder does not hand back a complete result
computed from an earlier version of the user's data, a speech job records in its ``metrics.json`` the stamps of
every file its config names by path (``input_stamps``): the noise files of ``noise`` and ``test_noise``
(:mod:`vaenmf.data.noises`) and, for a folder corpus (``data=speech_folder``), every audio file under
``data.root``. A rerun whose stamps differ runs the job again (:meth:`vaenmf.tasks.jobdir.JobDirectory.
previous_result`). The paper's corpora under ``DATA_ROOT`` are not stamped: they are not meant to change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from vaenmf.data.folder import SPEECH_SUFFIXES
from vaenmf.data.noises import parse_noise
from vaenmf.data.stamps import stamp_digest
from vaenmf.errors import VaenmfError

__all__ = ["input_stamps"]


def input_stamps(cfg: DictConfig) -> dict[str, str]:
    """``{what: stamp digest}`` of the files the job's config names by path; ``{}`` when it names none.

    Keys: ``noise:<path>`` / ``test_noise:<path>`` for each noise file, ``data.root`` for a folder corpus. A bad
    value is skipped here (the job refuses it, with its message, when it starts).
    """
    if str(cfg.get("task")) != "speech":
        return {}
    out: dict[str, str] = {}
    for key in ("noise", "test_noise"):
        value: Any = cfg.get(key)
        if value is None:
            continue
        try:
            specs = parse_noise(value, key)
        except VaenmfError:
            continue
        for spec in specs:
            if spec.path is not None:
                out[f"{key}:{spec.path}"] = stamp_digest([spec.path])
    data = cfg.get("data") or {}
    root = data.get("root") if data.get("corpus") == "folder" else None
    if root and Path(str(root)).expanduser().is_dir():
        files = [
            p
            for p in Path(str(root)).expanduser().rglob("*")
            if p.is_file() and p.suffix.lower() in SPEECH_SUFFIXES
        ]
        out["data.root"] = stamp_digest(files)
    return out
