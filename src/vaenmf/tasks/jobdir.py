"""A job's output folder as its record: one writer at a time, a complete result never destroyed, every attempt
logged, and a rerun only ever continuing the job that the folder holds.

- **Lock.** ``.vaenmf.lock`` is held with ``flock`` for the whole job: a second ``vaenmf-train`` on the same
  folder refuses at once, and a killed job leaves no stale lock (the kernel drops it with the process).
- **Same config only.** A folder that holds a job (its ``metrics.json``, or the ``config.yaml`` of a job that
  was killed before it finished) is continued only by a job with the same config hash: another config is
  refused with the keys that differ, before any work, so a checkpoint is never resumed under another config.
- **Complete results kept.** A job whose ``metrics.json`` is complete (``status: ok``) under the same code, and from
  the same versions of the user's own files its config names by path (``input_stamps``:
  :mod:`vaenmf.tasks.inputs`), is not run again (a requeued task, or a rerun sweep, skips it); an attempt that fails
  or is interrupted never replaces a complete ``metrics.json``.
- **Attempts.** Every attempt appends one line to ``attempts.jsonl`` (start, end, status, error, commit, config
  hash, host, pid), including refused ones.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from vaenmf.atomic import write_json_atomic
from vaenmf.errors import ConfigError
from vaenmf.tasks.runtime import container_hash, scientific_part

log = logging.getLogger(__name__)

LOCK_NAME = ".vaenmf.lock"
ATTEMPTS_NAME = "attempts.jsonl"
METRICS_NAME = "metrics.json"
CONFIG_NAME = "config.yaml"
#: How many differing keys a refusal lists.
SHOWN_DIFFERENCES = 6


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): tree}


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every scientific key whose value differs between two resolved configs."""
    a, b = _flatten(scientific_part(old)), _flatten(scientific_part(new))
    missing = object()
    lines = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, missing), b.get(key, missing)
        if va != vb:
            show = ["(absent)" if v is missing else json.dumps(v, default=str) for v in (va, vb)]
            lines.append(f"{key}: {show[0]} -> {show[1]}")
    return lines


class JobDirectory:
    """The record of one job's folder (see the module docstring). Use as a context manager around the job.

    Args:
        path: The job's output folder.
        enabled: False on the non-zero ranks of a DDP job, which neither lock nor write.
    """

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._lock_fd: int | None = None
        self._started = time.time()

    # ------------------------------------------------------------------------------------------- lock
    def __enter__(self) -> JobDirectory:
        if not self.enabled:
            return self
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(
                f"the job's output folder {self.path} is a file; give the job a folder (hydra.run.dir)"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / LOCK_NAME
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigError(
                f"another vaenmf-train ({holder}) is running in {self.path}; wait for it to finish, or give this "
                "job another folder (hydra.run.dir=...)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime(self._started)}".encode(), 0
        )
        self._lock_fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -------------------------------------------------------------------------------------- previous
    def _read_metrics(self) -> dict[str, Any] | None:
        path = self.path / METRICS_NAME
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # a torn or foreign file says nothing; the job reruns and replaces it
        return data if isinstance(data, dict) else None

    def _recorded_config(self, metrics: dict[str, Any] | None) -> dict[str, Any] | None:
        if metrics is not None and isinstance(metrics.get("config"), dict):
            return metrics["config"]
        path = self.path / CONFIG_NAME
        if not path.is_file():
            return None
        from omegaconf import OmegaConf

        try:
            container = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        except Exception:
            return None
        return container if isinstance(container, dict) else None

    def previous_result(
        self,
        config: dict[str, Any],
        git_commit: str | None = None,
        input_stamps: dict[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """The complete result of this very job from an earlier attempt, or None when it must (re)run.

        A complete result counts when it was computed by the same code (``git_commit``): after a code change the
        job runs again (its stages refit, their fingerprints include the code) and its new result replaces the old.

        Args:
            config: The job's resolved config (as recorded in metrics.json).
            git_commit: The code's commit (None: any).
            input_stamps: The stamps of the user's files the config names by path (:mod:`vaenmf.tasks.inputs`);
                a result recorded with other stamps (the files changed) is not reused. None: not compared.

        Every rank of a DDP job reads it (only rank 0 writes), so that all of them skip, refuse or run alike.

        Raises:
            ConfigError: If the folder holds a job with another config (the differing keys are listed).
        """
        metrics = self._read_metrics()
        recorded = self._recorded_config(metrics)
        if recorded is None:
            return None
        if container_hash(recorded) != container_hash(config):
            differences = config_differences(recorded, config)
            shown = "; ".join(differences[:SHOWN_DIFFERENCES])
            more = (
                f" and {len(differences) - SHOWN_DIFFERENCES} more"
                if len(differences) > SHOWN_DIFFERENCES
                else ""
            )
            raise ConfigError(
                f"{self.path} holds a job with another config ({shown}{more}); its checkpoints and results "
                "belong to that config. Rerun it with the same config to resume it, or give this job another "
                "folder (hydra.run.dir=...), or delete the folder to start afresh"
            )
        complete = metrics is not None and metrics.get("status") == "ok"
        same_code = git_commit is None or (metrics or {}).get("git_commit") == git_commit
        same_files = input_stamps is None or ((metrics or {}).get("input_stamps") or {}) == input_stamps
        if complete and same_code and not same_files:
            log.info(
                "%s: the files the config names by path changed since its result; running it again", self.path
            )
        return metrics if complete and same_code and same_files else None

    # ----------------------------------------------------------------------------------------- record
    def record(self, metrics: dict[str, Any]) -> bool:
        """Write this attempt's ``metrics.json`` unless it would replace a complete one with a failure; log the
        attempt. Returns whether ``metrics.json`` was written."""
        if not self.enabled:
            return False
        previous = self._read_metrics()
        keep = metrics.get("status") != "ok" and previous is not None and previous.get("status") == "ok"
        if not keep:
            write_json_atomic(self.path / METRICS_NAME, metrics)
        self.log_attempt(metrics, kept_previous=keep)
        return not keep

    def log_attempt(self, metrics: dict[str, Any], kept_previous: bool = False) -> None:
        """Append one line about this attempt to ``attempts.jsonl``."""
        if not self.enabled:
            return
        line = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self._started)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "status": metrics.get("status"),
            "error": metrics.get("error"),
            "git_commit": metrics.get("git_commit"),
            "config_hash": metrics.get("config_hash"),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        if kept_previous:
            line["note"] = "kept the complete metrics.json of an earlier attempt"
        self.path.mkdir(parents=True, exist_ok=True)
        # One short line per write with O_APPEND: concurrent appends do not interleave within a line.
        fd = os.open(self.path / ATTEMPTS_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, (json.dumps(line, default=str) + "\n").encode())
        finally:
            os.close(fd)
