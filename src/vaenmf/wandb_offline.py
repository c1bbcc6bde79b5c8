"""Read what an offline W&B run recorded, without the network and without W&B's own reader.

An offline run folder (``<save_dir>/wandb/offline-run-<time>-<id>/``) holds ``run-<id>.wandb``, a log of
protobuf ``Record`` messages (``wandb.proto.wandb_internal_pb2``) in LevelDB's log format (a ``:W&B`` header,
32 KiB blocks, each record chunk with a CRC-32 and a length), and ``files/`` (media: tables as
``media/table/*.table.json``, images as ``media/images/*.png``). The installed wandb (0.31) has no Python reader
of the log, so this module reads it; ``wandb sync`` is what uploads it.

Used by the tests to check what a job logged, and by hand on a cluster node without network::

    python -m vaenmf.wandb_offline outputs/table1/multiruns/<time>/0/wandb/offline-run-*
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["OfflineRun", "read_offline_run", "run_folders", "records"]

_HEADER = struct.Struct("<4sHB")  # ident, magic, version
_CHUNK = struct.Struct("<IHB")  # crc32, length, type
_IDENT = b":W&B"
_MAGIC = 0xBEE1
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


class OfflineRunError(ValueError):
    """The folder is not an offline W&B run, or its log is damaged."""


def _chunks(data: bytes, path: Path) -> Iterator[bytes]:
    """The records of a LevelDB-format log, reassembled from their chunks, CRC-checked."""
    if len(data) < _HEADER.size:
        raise OfflineRunError(
            f"{path} is empty or truncated ({len(data)} bytes): the run did not finish writing"
        )
    ident, magic, _version = _HEADER.unpack_from(data)
    if ident != _IDENT or magic != _MAGIC:
        raise OfflineRunError(f"{path} is not a W&B run log (header {data[:7]!r})")
    pos, pending = _HEADER.size, b""
    while pos + _CHUNK.size <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK.size:  # the block's tail is padding
            pos += left
            continue
        crc, length, kind = _CHUNK.unpack_from(data, pos)
        if kind == 0 and length == 0:  # zero padding to the end of the block
            pos += left
            continue
        body = data[pos + _CHUNK.size : pos + _CHUNK.size + length]
        if len(body) != length:
            raise OfflineRunError(f"{path}: truncated record at byte {pos}")
        if zlib.crc32(body, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            raise OfflineRunError(f"{path}: checksum mismatch at byte {pos}")
        pos += _CHUNK.size + length
        if kind == _FULL:
            yield body
        elif kind == _FIRST:
            pending = body
        elif kind == _MIDDLE:
            pending += body
        elif kind == _LAST:
            yield pending + body
            pending = b""
        else:
            raise OfflineRunError(f"{path}: unknown chunk type {kind} at byte {pos}")


def records(log_file: str | Path) -> Iterator[Any]:
    """Every ``wandb_internal_pb2.Record`` of a ``run-*.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    path = Path(log_file)
    for body in _chunks(path.read_bytes(), path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(body)
        yield record


def _set(tree: dict[str, Any], keys: Sequence[str], value: Any) -> None:
    for key in keys[:-1]:
        child = tree.get(key)
        if not isinstance(child, dict):
            child = tree[key] = {}
        tree = child
    tree[keys[-1]] = value


def _remove(tree: dict[str, Any], keys: Sequence[str]) -> None:
    for key in keys[:-1]:
        tree = tree.get(key) or {}
    if isinstance(tree, dict):
        tree.pop(keys[-1], None)


def _keys(item: Any) -> list[str]:
    return list(item.nested_key) or [item.key]


@dataclass
class OfflineRun:
    """What one offline run recorded.

    Attributes:
        folder: The run folder (``offline-run-<time>-<id>``).
        run_id, project, entity, group, job_type, name: From the run record.
        tags: The run's tags.
        config: The run's config (``wandb.init(config=...)`` and later updates), values decoded.
        summary: The final summary (every ``log`` call's last values and explicit summary updates), nested on
            the keys W&B split (a table's entry is ``{"_type": "table-file", "path": ...}``).
        history: One dict per ``log`` call (keys as logged, values decoded).
        metrics: The ``define_metric`` records: ``name`` or ``glob_name``, ``step_metric``.
        exit_code: The exit code ``finish`` recorded (None when the run never finished).
    """

    folder: Path
    run_id: str = ""
    project: str = ""
    entity: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, str]] = field(default_factory=list)
    exit_code: int | None = None

    def history_keys(self) -> set[str]:
        """Every key any ``log`` call of the run wrote (without W&B's own ``_step``, ``_runtime``, ...)."""
        return {key for row in self.history for key in row if not key.startswith("_")}

    def series(self, key: str) -> list[Any]:
        """The values of ``key`` in the order they were logged."""
        return [row[key] for row in self.history if key in row]

    def step_metric(self, key: str) -> str | None:
        """The x-axis ``define_metric`` gave ``key`` by name (not by a glob), or None."""
        for metric in self.metrics:
            if metric.get("name") == key and metric.get("step_metric"):
                return metric["step_metric"]
        return None

    def _media(self, key: str, kind: str) -> Path:
        entry = self.summary.get(key)
        if not isinstance(entry, dict) or entry.get("_type") != kind or "path" not in entry:
            raise KeyError(
                f"{self.folder}: summary has no {kind} under {key!r} (keys: {sorted(self.summary)})"
            )
        return self.folder / "files" / entry["path"]

    def table(self, key: str) -> dict[str, Any]:
        """The last ``wandb.Table`` logged under ``key``: ``{"columns": [...], "data": [[...], ...]}``."""
        return json.loads(self._media(key, "table-file").read_text())

    def table_rows(self, key: str) -> list[dict[str, Any]]:
        """The last table logged under ``key``, one dict per row."""
        table = self.table(key)
        return [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]

    def image(self, key: str) -> Path:
        """The file of the last image logged under ``key``."""
        return self._media(key, "image-file")


def run_folders(root: str | Path) -> list[Path]:
    """The offline run folders under ``root`` (a job folder, a sweep, a ``wandb/`` folder), sorted."""
    root = Path(root)
    if root.name.startswith("offline-run-"):
        return [root]
    return sorted(p for p in root.rglob("offline-run-*") if p.is_dir() and not p.is_symlink())


def read_offline_run(folder: str | Path, wait: float = 0.0) -> OfflineRun:
    """Read an offline run folder (``offline-run-<time>-<id>``).

    W&B's writer (the ``wandb-core`` process) finishes the log asynchronously: right after ``run.finish()`` in
    the same process the file may hold only part of the run (it is complete once the process has exited).
    ``wait`` seconds: read again until the log holds the run's exit record.

    Raises:
        OfflineRunError: If the folder holds no ``run-*.wandb`` log, or the log is damaged (or, with ``wait``,
            still incomplete when the time is up).
    """
    import time

    folder = Path(folder)
    deadline = time.monotonic() + wait
    while True:
        try:
            run = _read(folder)
        except OfflineRunError:
            if time.monotonic() >= deadline or not list(folder.glob("run-*.wandb")):
                raise
        else:
            if run.exit_code is not None or time.monotonic() >= deadline:
                return run
        time.sleep(0.1)


def _read(folder: Path) -> OfflineRun:
    logs = sorted(folder.glob("run-*.wandb"))
    if not logs:
        raise OfflineRunError(f"{folder} holds no run-*.wandb file: not an offline W&B run folder")
    run = OfflineRun(folder=folder)
    for record in records(logs[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.project, run.entity = r.run_id, r.project, r.entity
            run.group, run.job_type, run.name, run.tags = (
                r.run_group,
                r.job_type,
                r.display_name,
                list(r.tags),
            )
            for item in r.config.update:
                _set(run.config, _keys(item), json.loads(item.value_json))
        elif kind == "config":
            for item in record.config.update:
                _set(run.config, _keys(item), json.loads(item.value_json))
            for item in record.config.remove:
                _remove(run.config, _keys(item))
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set(row, _keys(item), json.loads(item.value_json))
            run.history.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _set(run.summary, _keys(item), json.loads(item.value_json))
            for item in record.summary.remove:
                _remove(run.summary, _keys(item))
        elif kind == "metric":
            m = record.metric
            run.metrics.append({"name": m.name, "glob_name": m.glob_name, "step_metric": m.step_metric})
        elif kind == "exit":
            run.exit_code = int(record.exit.exit_code)
    return run


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vaenmf.wandb_offline RUN_DIR...``: print each run's group, job type, tags and summary."""
    folders = [f for arg in (sys.argv[1:] if argv is None else argv) for f in run_folders(arg)]
    if not folders:
        print(
            "usage: python -m vaenmf.wandb_offline RUN_OR_JOB_DIR [...] (no offline run found)",
            file=sys.stderr,
        )
        return 2
    for folder in folders:
        try:
            run = read_offline_run(folder)
        except OfflineRunError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        scalars = {k: v for k, v in run.summary.items() if not k.startswith("_") and not isinstance(v, dict)}
        media = sorted(k for k, v in run.summary.items() if isinstance(v, dict) and "_type" in v)
        print(
            f"{folder}\n  project {run.project}  group {run.group}  job_type {run.job_type}  name {run.name}"
        )
        print(f"  tags {', '.join(run.tags)}  exit code {run.exit_code}")
        print(f"  {len(run.history)} history rows, keys: {', '.join(sorted(run.history_keys()))}")
        print(f"  tables and images: {', '.join(media) or '-'}")
        for key in sorted(scalars):
            print(f"  {key} = {scalars[key]}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
