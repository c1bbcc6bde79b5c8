"""Job discovery: every job folder of one or more sweep directories, read from its ``metrics.json``.

A job folder is any folder that holds a ``metrics.json`` or a ``.hydra/overrides.yaml``: crashed jobs (a Hydra
folder without ``metrics.json``) and failed ones (``status: failed``, or a file that cannot be parsed) are kept,
so that the tables show holes instead of silently dropping them. What a job ran comes from its ``metrics.json``
(:mod:`vaenmf.jobfile`), else from its saved config, else from its Hydra overrides.

A speech job's noise condition is its ``noise``, and, when it was tested on another condition than it was trained on
(mismatched-noise evaluation), its ``test_noise``: the job's :attr:`Job.condition` is then
``<noise> -> <test_noise>``, and it belongs to no table of the paper (:mod:`vaenmf.report.conditions`).

Every job is scored on one split, ``eval_split``: ``test`` (the mixtures the paper's tables report) or
``validation`` (the mixtures that studies choosing a default are scored on). It is read from ``metrics.json``
(``eval_split``, else the recorded config's ``eval_split`` or ``data.eval_split``), else from the saved config or
the overrides of a job without one; files of schema 2 that predate the key were all scored on ``test``.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaenmf.data.shortfalls import parse_shortfalls
from vaenmf.errors import DataError
from vaenmf.jobfile import SCHEMA_VERSION

__all__ = [
    "ReportWarning",
    "Job",
    "EVAL_SPLITS",
    "DEFAULT_EVAL_SPLIT",
    "load_jobs",
    "dedupe",
    "lookup",
    "snr_label",
    "to_float",
]

#: The splits a speech job can be scored on.
EVAL_SPLITS: tuple[str, ...] = ("test", "validation")
#: The split of a job that does not record one (files written before ``eval_split`` existed).
DEFAULT_EVAL_SPLIT = "test"


class ReportWarning(UserWarning):
    """Something in a sweep needs the reader's attention (malformed file, duplicate job, ...)."""


@dataclass
class Job:
    """One job folder of a sweep.

    Attributes:
        path: The job folder.
        metrics_file: Its ``metrics.json`` (None when absent).
        status: ``"ok"``, ``"failed"`` (status failed, or an unreadable metrics.json) or ``"missing"`` (a Hydra
            job folder without metrics.json: crashed or still running).
        error: Why it failed, naming the file.
        task, method, paper_column, noise, seed: What the job ran (None when unknown); ``method`` is the name of
            its ``conf/method/`` file, ``paper_column`` the column of the paper's tables it fills (None for an
            ablation row).
        test_noise: The condition the job was tested on, when not its ``noise`` (None: tested on ``noise``).
        components: The dictionary learner, activation estimator, ... the method composed.
        eval_split: The split the job was scored on, ``test`` or ``validation`` (:data:`DEFAULT_EVAL_SPLIT`
            when not recorded).
        git_commit, config_hash, corpus: Provenance, when recorded.
        summary: SNR label (``"-5"``, ``"0"``, ...) -> metric -> mean over utterances.
        shortfalls: What the job's data gave fewer of than it asked (``metrics.json``'s ``shortfalls``,
            :mod:`vaenmf.data.shortfalls`; empty when nothing, or in files written before the key existed).
        data: The parsed metrics.json (empty when unreadable), for other reports.
    """

    path: Path
    metrics_file: Path | None
    status: str
    error: str = ""
    task: str | None = None
    method: str | None = None
    paper_column: str | None = None
    noise: str | None = None
    seed: int | None = None
    test_noise: str | None = None
    components: dict[str, str] = field(default_factory=dict)
    eval_split: str = DEFAULT_EVAL_SPLIT
    git_commit: str | None = None
    config_hash: str | None = None
    corpus: str | None = None
    summary: dict[str, dict[str, float]] = field(default_factory=dict)
    shortfalls: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    mtime: float = 0.0

    @property
    def not_implemented(self) -> bool:
        return self.status == "failed" and "NotImplementedError" in self.error

    @property
    def condition(self) -> str | None:
        """The noise condition: ``noise``, or ``<noise> -> <test_noise>`` for a mismatched-noise job."""
        if self.noise is None or self.test_noise is None:
            return self.noise
        return f"{self.noise} -> {self.test_noise}"

    def describe(self) -> str:
        seed = "?" if self.seed is None else self.seed
        split = "" if self.eval_split == DEFAULT_EVAL_SPLIT else f" ({self.eval_split})"
        noise = self.condition
        base = f"{self.method}/{noise}/seed {seed}" if noise else f"{self.method}/seed {seed}"
        return base + split


def snr_label(key: Any) -> str | None:
    """Normalise an SNR key: ``-5``, ``"-5"``, ``"-5.0"`` and ``"-5dB"`` all give ``"-5"``."""
    text = str(key).strip().lower().removesuffix("db").strip()
    try:
        value = float(text)
    except ValueError:
        return None
    return str(int(value)) if value.is_integer() else f"{value:g}"


def to_float(value: Any) -> float:
    """A number as float, NaN for anything else (None, booleans, text)."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _to_int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def _read_yaml(path: Path) -> Any:
    """Parsed YAML file, or None when absent/unreadable (best effort: only used to identify crashed jobs)."""
    if not path.is_file():
        return None
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    try:
        import yaml

        return yaml.safe_load(text)
    except Exception:  # an odd file: fall back to "- key=value" lines (overrides.yaml)
        return [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("- ")]


def _read_overrides(job_dir: Path) -> dict[str, str]:
    """``key=value`` pairs of ``.hydra/overrides.yaml`` (leading ``+``/``++``/``~`` dropped); {} if none."""
    items = _read_yaml(job_dir / ".hydra" / "overrides.yaml")
    out: dict[str, str] = {}
    if not isinstance(items, list):
        return out
    for item in items:
        if isinstance(item, str) and "=" in item:
            key, value = item.split("=", 1)
            out[key.strip().lstrip("+~")] = value.strip().strip("'\"")
    return out


def _identity_from_config(job_dir: Path) -> dict[str, Any]:
    """(task, method, paper_column, noise, seed, corpus) from the job's saved config, when there is one."""
    for path in (job_dir / "config.yaml", job_dir / ".hydra" / "config.yaml"):
        cfg = _read_yaml(path)
        if not isinstance(cfg, dict):
            continue
        method = cfg.get("method") if isinstance(cfg.get("method"), dict) else {}
        data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
        ident = {
            "task": cfg.get("task"),
            "method": method.get("name"),
            "paper_column": method.get("paper_column"),
            "noise": cfg.get("noise"),
            "test_noise": cfg.get("test_noise"),
            "seed": cfg.get("seed"),
            "corpus": data.get("corpus"),
            "eval_split": cfg.get("eval_split", data.get("eval_split")),
        }
        # Unresolved interpolations ("${noise}") say nothing.
        return {k: v for k, v in ident.items() if v is not None and "${" not in str(v)}
    return {}


def _identity_from_overrides(overrides: Mapping[str, str]) -> dict[str, Any]:
    """Best-effort (task, method, noise, seed) of a job from its Hydra overrides."""
    keys = {"method": "method", "noise": "noise", "test_noise": "test_noise", "task": "task", "seed": "seed"}
    ident = {field_: overrides[key] for field_, key in keys.items() if key in overrides}
    for key in ("data.eval_split", "eval_split"):  # the top-level key wins
        if key in overrides:
            ident["eval_split"] = overrides[key]
    return ident


def _identity(job_dir: Path) -> dict[str, Any]:
    """What a job ran, from its saved config, else its overrides (for jobs without a readable metrics.json)."""
    ident: dict[str, Any] = dict.fromkeys(
        ("task", "method", "paper_column", "noise", "test_noise", "seed", "corpus")
    )
    ident.update(_identity_from_overrides(_read_overrides(job_dir)))
    ident.update(_identity_from_config(job_dir))
    for key in ("task", "method", "paper_column", "noise", "test_noise", "corpus"):
        ident[key] = None if ident[key] in (None, "null") else str(ident[key])
    if ident["test_noise"] == ident["noise"]:
        ident["test_noise"] = None
    ident["seed"] = _to_int(ident["seed"])
    split = ident.get("eval_split")
    ident["eval_split"] = str(split) if split in EVAL_SPLITS else DEFAULT_EVAL_SPLIT
    return ident


def _recorded_split(data: Mapping[str, Any]) -> Any:
    """The ``eval_split`` a metrics.json records (top level, else in its config), None when it records none."""
    if data.get("eval_split") is not None:
        return data["eval_split"]
    config = data.get("config") if isinstance(data.get("config"), Mapping) else {}
    for key in ("eval_split", "data.eval_split"):
        value = lookup(config, key)
        if value is not None:
            return value
    return None


def _parse_summary(raw: Any) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {}
    if not isinstance(raw, Mapping):
        return summary
    for key, values in raw.items():
        label = snr_label(key)
        if label is None or not isinstance(values, Mapping):
            continue
        summary[label] = {str(k): to_float(v) for k, v in values.items()}
    return summary


def _failed(job_dir: Path, metrics_file: Path, message: str, ident: dict[str, Any], mtime: float) -> Job:
    warnings.warn(f"{message}; the job is shown as failed", ReportWarning, stacklevel=4)
    return Job(path=job_dir, metrics_file=metrics_file, status="failed", error=message, mtime=mtime, **ident)


def _load_job(job_dir: Path) -> Job:
    metrics_file = job_dir / "metrics.json"
    ident = _identity(job_dir)
    if not metrics_file.is_file():
        return Job(
            path=job_dir,
            metrics_file=None,
            status="missing",
            error=f"no metrics.json in {job_dir} (job crashed, was killed or is still running)",
            **ident,
        )
    mtime = metrics_file.stat().st_mtime
    try:
        data = json.loads(metrics_file.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"top level is a {type(data).__name__}, expected an object")
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return _failed(job_dir, metrics_file, f"malformed {metrics_file}: {err}", ident, mtime)
    schema = data.get("schema", 1)
    if schema != SCHEMA_VERSION:
        return _failed(
            job_dir,
            metrics_file,
            f"{metrics_file} has schema {schema!r}, this vaenmf reads schema {SCHEMA_VERSION} (jobs named by "
            "method=, from conf/method/); it was written by another version: rerun the job with this one",
            ident,
            mtime,
        )

    def get(key: str) -> str | None:
        value = data.get(key)
        if value is None or value == "unknown":
            value = ident.get(key)
        return None if value is None else str(value)

    split = _recorded_split(data)
    if split is None:
        split = ident["eval_split"]
    if split not in EVAL_SPLITS:
        ident["eval_split"] = DEFAULT_EVAL_SPLIT
        return _failed(
            job_dir,
            metrics_file,
            f"{metrics_file}: eval_split must be one of {', '.join(EVAL_SPLITS)}, got {split!r}",
            ident,
            mtime,
        )
    components = data.get("components")
    # metrics.json names test_noise only when the job was mismatched; a file without its noise keys says nothing.
    test_noise = data.get("test_noise") if "noise" in data else ident.get("test_noise")
    test_noise = None if test_noise is None or str(test_noise) == get("noise") else str(test_noise)
    job = Job(
        path=job_dir,
        metrics_file=metrics_file,
        status="ok",
        task=get("task"),
        method=get("method"),
        paper_column=get("paper_column"),
        noise=get("noise"),
        test_noise=test_noise,
        seed=_to_int(data.get("seed", ident["seed"])),
        components={str(k): str(v) for k, v in components.items()} if isinstance(components, dict) else {},
        eval_split=str(split),
        git_commit=get("git_commit"),
        config_hash=get("config_hash"),
        corpus=get("corpus") or ident["corpus"],
        summary=_parse_summary(data.get("summary")),
        shortfalls=parse_shortfalls(data.get("shortfalls")),
        data=data,
        mtime=mtime,
    )
    status = str(data.get("status", "ok"))
    if status != "ok":
        job.status = "failed"
        error = data.get("error") or f"status {status!r} without an error message"
        job.error = f"{metrics_file}: {error}"
    elif job.task == "speech" and not job.summary:
        job.status = "failed"
        job.error = f"{metrics_file} has status ok but no per-SNR 'summary' mapping"
        warnings.warn(f"{job.error}; the job is shown as failed", ReportWarning, stacklevel=3)
    return job


def lookup(tree: Any, dotted: str) -> Any:
    """``tree["a"]["b"]`` for ``"a.b"``; None when any part is missing."""
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _job_dirs(root: Path) -> list[Path]:
    dirs = {p.parent for p in root.rglob("metrics.json")}
    dirs |= {p.parent.parent for p in root.rglob("overrides.yaml") if p.parent.name == ".hydra"}
    return sorted(dirs)


def load_jobs(roots: Sequence[str | os.PathLike[str]]) -> list[Job]:
    """Find and read every job under the given sweep directories.

    Unreadable ``metrics.json`` files, and files of another schema, give a :class:`ReportWarning` and a
    ``failed`` job; Hydra job folders without one give a ``missing`` job.

    Args:
        roots: Sweep directories (each searched recursively).

    Returns:
        The jobs, sorted by path.

    Raises:
        DataError: If a directory does not exist, or holds no ``metrics.json`` at all.
    """
    if not roots:
        raise DataError(
            "no sweep directory given; expected at least one directory holding metrics.json files"
        )
    jobs: list[Job] = []
    for root in map(Path, roots):
        if not root.is_dir():
            raise DataError(f"sweep directory {root} does not exist or is not a directory")
        if next(root.rglob("metrics.json"), None) is None:
            started = _job_dirs(root)
            if started:
                raise DataError(
                    f"no metrics.json found under {root}: none of its {len(started)} job folder(s) has finished "
                    "(still running, or killed before writing it; see the job logs)"
                )
            raise DataError(
                f"no metrics.json found under {root}: the folder holds no jobs (expected a Hydra sweep or job "
                "directory: <sweep>/<n>/metrics.json)"
            )
        jobs.extend(_load_job(d) for d in _job_dirs(root))
    return sorted(jobs, key=lambda j: str(j.path))


def dedupe(jobs: Iterable[Job], config_keys: Sequence[str] = ()) -> list[Job]:
    """One job per (task, method, noise condition, seed, eval_split): prefer ok over failed over missing, then the
    newest.

    Args:
        jobs: The jobs.
        config_keys: Dotted config keys that tell jobs apart as well (a study's varied keys).
    """
    rank = {"ok": 0, "failed": 1, "missing": 2}
    groups: dict[tuple[Any, ...], list[Job]] = defaultdict(list)
    for job in jobs:
        config = job.data.get("config") or {}
        varied = tuple(json.dumps(lookup(config, key), default=str) for key in config_keys)
        groups[(job.task, job.method, job.condition, job.seed, job.eval_split, *varied)].append(job)
    chosen = []
    for group in groups.values():
        group.sort(key=lambda j: (rank.get(j.status, 3), -j.mtime, str(j.path)))
        if len(group) > 1:
            warnings.warn(
                f"{len(group)} jobs for {group[0].describe()}: using {group[0].path} ({group[0].status}); "
                f"ignoring {', '.join(str(j.path) for j in group[1:])}",
                ReportWarning,
                stacklevel=3,
            )
        chosen.append(group[0])
    return chosen
