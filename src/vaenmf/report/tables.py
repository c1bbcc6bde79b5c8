"""Speech-enhancement tables (the paper's Tables 1 and 2, and an ablation) from sweep directories.

The input is one or more directory trees (Hydra multirun sweeps) whose job folders each hold a ``metrics.json``
(written by the speech task). :func:`load_jobs` finds every job, including crashed ones (a folder with a
``.hydra/`` but no ``metrics.json``, or a ``metrics.json`` with ``status: failed`` or that cannot be parsed),
so that the tables show holes instead of silently dropping them.

Aggregation, per table cell (paper column = (method, separator), SNR row, metric):

1. per job (one method, separator, noise, seed): the mean over utterances, read from ``summary[snr]``;
2. per seed: the mean over the table's noise types (Table 1: factory and babble, both required; Table 2:
   pooled);
3. over seeds: the mean, with the sample standard deviation (ddof=1) when there are two or more seeds.

The "Aver" row is, per seed, the mean of the four SNR rows (as in the paper), then averaged over seeds. A cell
is ``ok`` when every seed seen anywhere in the table is complete, ``partial`` when only some are (the value is
the mean over the complete seeds), and otherwise ``failed``, ``not implemented`` (the jobs failed with
NotImplementedError), ``missing`` (an expected job has no result) or ``not run`` (not expected, no job).

The paper's PESQ column is compared with our ``pesq_nb`` (raw narrow-band P.862 MOS, see
:func:`vaenmf.metrics.pesq_scores`).

This module is speech-only; job discovery (:func:`load_jobs`) is task-agnostic so that a synergy report
(``vaf.csv``, Figure 2) can reuse it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaenmf.atomic import write_text_atomic
from vaenmf.errors import ConfigError, DataError
from vaenmf.report.paper import (
    PAPER_COLUMNS,
    PAPER_METRICS,
    PAPER_ROWS,
    PAPER_SNRS,
    TABLE_TITLES,
    paper_value,
)

__all__ = [
    "ReportWarning",
    "Job",
    "Cell",
    "SpeechTable",
    "AblationTable",
    "COLUMN_KEYS",
    "METRIC_KEYS",
    "TABLE_NOISES",
    "DEFAULT_SEPARATOR",
    "load_jobs",
    "parse_expect",
    "default_expect",
    "build_table",
    "build_ablation",
    "render_markdown",
    "render_csv",
    "render_latex",
    "render_ablation_markdown",
    "render_ablation_csv",
    "write_speech_report",
]

#: Paper column -> (method, separator) of our jobs.
COLUMN_KEYS: dict[str, tuple[str, str]] = {
    "NMF": ("nmf", "mu"),
    "DNMF": ("dnmf", "mu"),
    "DNN": ("drnn", "drnn"),
    "VAE-NMF": ("vae_nmf", "dnn"),
}
#: Dictionary methods this version of the package can run; a paper column of any other method without a job is
#: marked "not implemented" rather than "missing".
IMPLEMENTED_METHODS: frozenset[str] = frozenset({"nmf", "dnmf", "drnn", "vae_nmf"})
#: Paper metric -> key in a job's ``summary[snr]``.
METRIC_KEYS: dict[str, str] = {"sdr": "sdr", "sir": "sir", "sar": "sar", "pesq": "pesq_nb"}
METRIC_LABELS: dict[str, str] = {"sdr": "SDR", "sir": "SIR", "sar": "SAR", "pesq": "PESQ"}
#: Table -> the noise conditions averaged in it.
TABLE_NOISES: dict[str, tuple[str, ...]] = {"table1": ("factory", "babble"), "table2": ("pooled",)}
#: Separator assumed when a job's metrics.json or overrides do not name one (the paper's pairing).
DEFAULT_SEPARATOR: dict[str, str] = {"nmf": "mu", "dnmf": "mu", "drnn": "drnn", "vae_nmf": "dnn"}
#: Ablation metrics: label -> (key for a method's estimate, key for the unprocessed input).
ABLATION_METRICS: dict[str, tuple[str, str]] = {
    "SDR": ("sdr", "sdr_input"),
    "PESQ": ("pesq_nb", "pesq_nb_input"),
}

INPUT_ROW = ("input", "unprocessed")


class ReportWarning(UserWarning):
    """Something in a sweep needs the reader's attention (malformed file, duplicate job, ...)."""


# ------------------------------------------------------------------------------------------------ jobs
@dataclass
class Job:
    """One job folder of a sweep.

    Attributes:
        path: The job folder.
        metrics_file: Its ``metrics.json`` (None when absent).
        status: ``"ok"``, ``"failed"`` (status failed, or an unreadable metrics.json) or ``"missing"`` (a Hydra
            job folder without metrics.json: crashed or still running).
        error: Why it failed, naming the file.
        task, method, separator, noise, seed: What the job ran (from metrics.json, else from
            ``.hydra/overrides.yaml``; None when unknown).
        git_commit, config_hash, corpus: Provenance, when recorded.
        summary: SNR label (``"-5"``, ``"0"``, ...) -> metric -> mean over utterances.
        data: The parsed metrics.json (empty when unreadable), for other reports.
    """

    path: Path
    metrics_file: Path | None
    status: str
    error: str = ""
    task: str | None = None
    method: str | None = None
    separator: str | None = None
    noise: str | None = None
    seed: int | None = None
    git_commit: str | None = None
    config_hash: str | None = None
    corpus: str | None = None
    summary: dict[str, dict[str, float]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    mtime: float = 0.0

    @property
    def not_implemented(self) -> bool:
        return self.status == "failed" and "NotImplementedError" in self.error

    def describe(self) -> str:
        seed = "?" if self.seed is None else self.seed
        return f"{self.method}/{self.separator}/{self.noise}/seed {seed}"


def _snr_label(key: Any) -> str | None:
    """Normalise an SNR key: ``-5``, ``"-5"``, ``"-5.0"`` and ``"-5dB"`` all give ``"-5"``."""
    text = str(key).strip().lower().removesuffix("db").strip()
    try:
        value = float(text)
    except ValueError:
        return None
    return str(int(value)) if value.is_integer() else f"{value:g}"


def _to_float(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


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
    except Exception:  # pyyaml missing or an odd file: fall back to "- key=value" lines (overrides.yaml)
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
    """(task, method, separator, noise, seed, corpus) from the job's saved config, when there is one."""
    for path in (job_dir / "config.yaml", job_dir / ".hydra" / "config.yaml"):
        cfg = _read_yaml(path)
        if not isinstance(cfg, dict):
            continue

        def sub(group: str, key: str, cfg: dict = cfg) -> Any:
            node = cfg.get(group)
            return node.get(key) if isinstance(node, dict) else None

        ident = {
            "task": cfg.get("task"),
            "method": sub("model", "name"),
            "separator": sub("separator", "name"),
            "noise": cfg.get("noise"),
            "seed": cfg.get("seed"),
            "corpus": sub("data", "corpus"),
        }
        if ident["task"] not in (None, "speech"):  # a synergy job's config has speech keys it does not use
            ident["separator"] = ident["noise"] = None
        # Unresolved interpolations ("${noise}") say nothing.
        return {k: v for k, v in ident.items() if v is not None and "${" not in str(v)}
    return {}


def _identity_from_overrides(overrides: Mapping[str, str]) -> dict[str, Any]:
    """Best-effort (task, method, separator, noise, seed) of a job from its Hydra overrides."""

    def first(*keys: str) -> str | None:
        for key in keys:
            if key in overrides:
                return overrides[key]
        return None

    ident: dict[str, Any] = {
        "method": first("model", "model.name", "method"),
        "separator": first("separator", "separator.name", "model.separator"),
        "noise": first("noise", "data.noise"),
        "task": first("task"),
        "seed": first("seed"),
    }
    return {k: v for k, v in ident.items() if v is not None}


def _identity(job_dir: Path) -> dict[str, Any]:
    """What a job ran, from its saved config, else its overrides (for jobs without a readable metrics.json)."""
    ident = {"task": None, "method": None, "separator": None, "noise": None, "seed": None, "corpus": None}
    ident.update(_identity_from_overrides(_read_overrides(job_dir)))
    ident.update(_identity_from_config(job_dir))
    for key in ("task", "method", "separator", "noise", "corpus"):
        ident[key] = None if ident[key] is None else str(ident[key])
    ident["seed"] = _to_int(ident["seed"])
    return ident


def _to_int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def _corpus_of(data: Mapping[str, Any]) -> str | None:
    corpus = data.get("corpus")
    if corpus is None:
        corpus = data.get("data")
    if isinstance(corpus, Mapping):
        corpus = corpus.get("corpus") or corpus.get("name")
    return None if corpus is None else str(corpus)


def _parse_summary(raw: Any) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {}
    if not isinstance(raw, Mapping):
        return summary
    for key, values in raw.items():
        label = _snr_label(key)
        if label is None or not isinstance(values, Mapping):
            continue
        summary[label] = {str(k): _to_float(v) for k, v in values.items()}
    return summary


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
        message = f"malformed {metrics_file}: {err}"
        warnings.warn(f"{message}; the job is shown as failed", ReportWarning, stacklevel=3)
        return Job(
            path=job_dir, metrics_file=metrics_file, status="failed", error=message, mtime=mtime, **ident
        )

    def get(key: str) -> str | None:
        value = data.get(key)
        if value is None or value == "unknown":
            value = ident.get(key)
        return None if value is None else str(value)

    job = Job(
        path=job_dir,
        metrics_file=metrics_file,
        status="ok",
        task=get("task"),
        method=get("method"),
        separator=get("separator"),
        noise=get("noise"),
        seed=_to_int(data.get("seed", ident["seed"])),
        git_commit=get("git_commit"),
        config_hash=get("config_hash"),
        corpus=_corpus_of(data) or ident["corpus"],
        summary=_parse_summary(data.get("summary")),
        data=data,
        mtime=mtime,
    )
    status = str(data.get("status", "ok"))
    if status != "ok":
        job.status = "failed"
        error = data.get("error") or f"status {status!r} without an error message"
        job.error = f"{metrics_file}: {error}"
    elif job.task in (None, "speech") and not job.summary:
        job.status = "failed"
        job.error = f"{metrics_file} has status ok but no per-SNR 'summary' mapping"
        warnings.warn(f"{job.error}; the job is shown as failed", ReportWarning, stacklevel=3)
    return job


def _job_dirs(root: Path) -> list[Path]:
    dirs = {p.parent for p in root.rglob("metrics.json")}
    dirs |= {p.parent.parent for p in root.rglob("overrides.yaml") if p.parent.name == ".hydra"}
    return sorted(dirs)


def load_jobs(roots: Sequence[str | os.PathLike[str]]) -> list[Job]:
    """Find and read every job under the given sweep directories.

    A job folder is any folder that holds a ``metrics.json`` or a ``.hydra/overrides.yaml``. Unreadable
    ``metrics.json`` files give a :class:`ReportWarning` and a ``failed`` job; Hydra job folders without one
    give a ``missing`` job. What a job ran comes from metrics.json, else from its overrides (``model=``,
    ``noise=``, ``seed=``, ``separator=``/``model.separator=``); a missing separator defaults to the paper's
    pairing (:data:`DEFAULT_SEPARATOR`).

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
            raise DataError(f"no metrics.json found under {root}; expected a Hydra sweep (or job) directory")
        jobs.extend(_load_job(d) for d in _job_dirs(root))
    for job in jobs:
        if job.separator is None and job.task in (None, "speech") and job.method in DEFAULT_SEPARATOR:
            job.separator = DEFAULT_SEPARATOR[job.method]
    return sorted(jobs, key=lambda j: str(j.path))


def table_of_noise(noise: str | None) -> str | None:
    """The table a noise condition belongs to (``table1``/``table2``), or None."""
    for table, noises in TABLE_NOISES.items():
        if noise in noises:
            return table
    return None


def _is_speech(job: Job) -> bool:
    return job.task == "speech" or (job.task is None and table_of_noise(job.noise) is not None)


# -------------------------------------------------------------------------------------------- expect grid
def default_expect(tables: Iterable[str]) -> set[tuple[str, str, str]]:
    """The paper's four columns for every noise of the given tables."""
    return {(m, s, noise) for t in tables for (m, s) in COLUMN_KEYS.values() for noise in TABLE_NOISES[t]}


def parse_expect(spec: str, tables: Iterable[str] | None = None) -> set[tuple[str, str, str]]:
    """Parse ``--expect``: comma-separated ``METHOD:SEPARATOR[:NOISE]`` or paper column names.

    ``nmf:mu:factory`` expects one job per seed; ``nmf:mu`` (or ``NMF``) expects every noise of ``tables``
    (default: both tables' noises).

    Raises:
        ConfigError: If an item is not of that form.
    """
    noises_all = [n for t in (tables or TABLE_NOISES) for n in TABLE_NOISES[t]]
    out: set[tuple[str, str, str]] = set()
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item in COLUMN_KEYS:
            method, sep = COLUMN_KEYS[item]
            out |= {(method, sep, n) for n in noises_all}
            continue
        parts = item.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ConfigError(
                f"--expect item {item!r} is not METHOD:SEPARATOR[:NOISE] (e.g. vae_nmf:dnn:factory) "
                f"or a paper column ({', '.join(COLUMN_KEYS)})"
            )
        if len(parts) == 3:
            if table_of_noise(parts[2]) is None:
                known = ", ".join(n for ns in TABLE_NOISES.values() for n in ns)
                raise ConfigError(
                    f"--expect item {item!r}: unknown noise {parts[2]!r}; expected one of {known}"
                )
            out.add((parts[0], parts[1], parts[2]))
        else:
            out |= {(parts[0], parts[1], n) for n in noises_all}
    return out


# --------------------------------------------------------------------------------------------- cells
@dataclass
class Cell:
    """One aggregated table cell.

    Attributes:
        ours: Mean over complete seeds (NaN when none).
        std: Sample std over seeds (ddof=1), None with fewer than two seeds.
        n_seeds: Number of complete seeds averaged.
        status: ``ok``, ``partial``, ``failed``, ``not implemented``, ``missing`` or ``not run``.
        note: What is incomplete, e.g. ``"seed 1: babble failed"``.
        paper: The published value (None when the paper has no such cell).
    """

    ours: float
    std: float | None
    n_seeds: int
    status: str
    note: str = ""
    paper: float | None = None

    @property
    def diff(self) -> float | None:
        if self.paper is None or not math.isfinite(self.ours):
            return None
        return self.ours - self.paper


def _group_status(jobs: Sequence[Job]) -> str:
    if not jobs:
        return "missing"
    if all(j.not_implemented for j in jobs):
        return "not implemented"
    if any(j.status == "failed" for j in jobs):
        return "failed"
    return "missing"


def _aggregate(
    jobs_at: Mapping[tuple[str, int | None], Sequence[Job]],
    noises: Sequence[str],
    seeds: Sequence[int | None],
    row: str,
    key: str,
    expected: bool,
) -> Cell:
    """Mean over noises (all required) per seed, then over seeds. ``jobs_at[(noise, seed)]`` -> jobs."""
    snrs = PAPER_SNRS if row == "Aver" else (row,)
    per_seed: list[float] = []
    issues: list[str] = []
    problem_jobs: list[Job] = []
    for seed in seeds:
        seed_label = "?" if seed is None else str(seed)
        noise_values: list[float] = []
        for noise in noises:
            group = list(jobs_at.get((noise, seed), ()))
            ok = [j for j in group if j.status == "ok"]
            values = []
            for j in ok:
                snr_vals = [j.summary.get(snr, {}).get(key, math.nan) for snr in snrs]
                if all(math.isfinite(v) for v in snr_vals):
                    values.append(float(np.mean(snr_vals)))
            if values:
                noise_values.append(float(np.mean(values)))
                continue
            if ok:
                missing_snrs = [
                    snr for snr in snrs if not math.isfinite(ok[0].summary.get(snr, {}).get(key, math.nan))
                ]
                issues.append(f"seed {seed_label}: {noise} has no {key} at SNR {', '.join(missing_snrs)}")
            else:
                status = _group_status(group)
                issues.append(f"seed {seed_label}: {noise} {status}")
                problem_jobs.extend(group)
        if len(noise_values) == len(noises):
            per_seed.append(float(np.mean(noise_values)))
    n = len(per_seed)
    ours = float(np.mean(per_seed)) if n else math.nan
    std = float(np.std(per_seed, ddof=1)) if n > 1 else None
    note = "; ".join(issues)
    if n and not issues:
        status = "ok"
    elif n:
        status = "partial"
    elif not any(jobs_at.values()):
        status = "missing" if expected else "not run"
    elif problem_jobs and all(j.not_implemented for j in problem_jobs):
        status = "not implemented"
    elif any(j.status == "failed" for j in problem_jobs):
        status = "failed"
    else:
        status = "missing"
    return Cell(ours=ours, std=std, n_seeds=n, status=status, note=note)


def _dedupe(jobs: Iterable[Job]) -> list[Job]:
    """One job per (method, separator, noise, seed): prefer ok over failed over missing, then the newest."""
    rank = {"ok": 0, "failed": 1, "missing": 2}
    groups: dict[tuple[Any, ...], list[Job]] = defaultdict(list)
    for job in jobs:
        groups[(job.method, job.separator, job.noise, job.seed)].append(job)
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


# --------------------------------------------------------------------------------------------- tables
@dataclass
class SpeechTable:
    """An aggregated Table 1 or 2.

    Attributes:
        table: ``"table1"`` or ``"table2"``.
        cells: ``(row, column, metric) -> Cell`` for rows :data:`PAPER_ROWS`, paper columns and paper metrics.
        seeds: Every seed seen in the table's jobs.
        jobs: The table's jobs (after removing duplicates).
        header: Provenance lines (corpus, seeds, commits, jobs).
    """

    table: str
    cells: dict[tuple[str, str, str], Cell]
    seeds: list[int | None]
    jobs: list[Job]
    header: list[str]
    unattributed: list[Job] = field(default_factory=list)

    @property
    def problem_jobs(self) -> list[Job]:
        return [j for j in self.jobs if j.status != "ok"]


@dataclass
class AblationTable:
    """SDR and PESQ of every (method, separator) present, plus the unprocessed input, for one table setting.

    Attributes:
        table: ``"table1"`` or ``"table2"`` (which noise setting).
        rows: ``(method, separator)`` pairs; :data:`INPUT_ROW` is the unprocessed mixture.
        cells: ``(pair, snr_row, metric_label) -> Cell``.
    """

    table: str
    rows: list[tuple[str, str]]
    cells: dict[tuple[tuple[str, str], str, str], Cell]


def _seed_sort_key(seed: int | None) -> tuple[int, int]:
    return (1, 0) if seed is None else (0, seed)


def _table_jobs(jobs: Iterable[Job], table: str) -> list[Job]:
    return _dedupe(j for j in jobs if _is_speech(j) and j.noise in TABLE_NOISES[table])


def _jobs_at(jobs: Iterable[Job], method: str | None = None, separator: str | None = None):
    out: dict[tuple[str, int | None], list[Job]] = defaultdict(list)
    for j in jobs:
        if method is None or (j.method == method and j.separator == separator):
            out[(j.noise, j.seed)].append(j)  # type: ignore[index]
    return out


def _header(jobs: Sequence[Job], seeds: Sequence[int | None]) -> list[str]:
    lines: list[str] = []
    corpora = Counter(j.corpus or "unknown" for j in jobs if j.status == "ok")
    if not corpora:
        lines.append("Corpus: unknown (no job finished)")
    elif len(corpora) == 1:
        corpus = next(iter(corpora))
        kind = (
            " (embedded synthetic demo corpus, not TIMIT/NOISEX-92)"
            if corpus.lower().startswith("demo")
            else ""
        )
        lines.append(f"Corpus: {corpus}{kind}")
    else:
        lines.append("Corpus: MIXED " + ", ".join(f"{c} ({k} jobs)" for c, k in sorted(corpora.items())))
    lines.append("Seeds: " + (", ".join("?" if s is None else str(s) for s in seeds) or "none"))
    commits = Counter((j.git_commit or "unknown") for j in jobs if j.metrics_file is not None)
    lines.append(
        "Git commits: " + (", ".join(f"{c} ({k} jobs)" for c, k in sorted(commits.items())) or "none")
    )
    hashes = {j.config_hash for j in jobs if j.config_hash}
    if hashes:
        lines.append(f"Config hashes: {len(hashes)} distinct")
    status = Counter(j.status for j in jobs)
    lines.append("Jobs: " + ", ".join(f"{status[s]} {s}" for s in ("ok", "failed", "missing") if status[s]))
    n_utt: Counter[int] = Counter()
    n_failed: Counter[str] = Counter()  # utterances a metric could not score (NaN), e.g. PESQ
    for j in jobs:
        for values in j.summary.values():
            if math.isfinite(values.get("n_utterances", math.nan)):
                n_utt[int(values["n_utterances"])] += 1
            for key, value in values.items():
                if key.endswith("_n_failed") and math.isfinite(value):
                    n_failed[key.removesuffix("_n_failed")] += int(value)
    if n_utt:
        lines.append("Utterances per job and SNR: " + ", ".join(str(k) for k in sorted(n_utt)))
    if sum(n_failed.values()):
        lines.append(
            "Utterances a metric could not score (NaN, left out of that mean): "
            + ", ".join(f"{k} {v}" for k, v in sorted(n_failed.items()) if v)
        )
    return lines


def build_table(
    jobs: Sequence[Job], table: str, expect: set[tuple[str, str, str]] | None = None
) -> SpeechTable:
    """Aggregate the jobs of one table into the paper's layout.

    Args:
        jobs: All jobs (from :func:`load_jobs`); those of other tables and tasks are ignored.
        table: ``"table1"`` or ``"table2"``.
        expect: Expected ``(method, separator, noise)`` jobs; None for :func:`default_expect` of this table.
            An expected column without any job is ``missing``, an unexpected one ``not run``.

    Returns:
        The table, with the paper's value beside every cell.

    Raises:
        ConfigError: If ``table`` is unknown.
    """
    if table not in TABLE_NOISES:
        raise ConfigError(f"unknown table {table!r}; expected one of {', '.join(TABLE_NOISES)}")
    expect = default_expect([table]) if expect is None else expect
    tjobs = _table_jobs(jobs, table)
    seeds = sorted({j.seed for j in tjobs}, key=_seed_sort_key)
    noises = TABLE_NOISES[table]
    cells: dict[tuple[str, str, str], Cell] = {}
    for column, (method, sep) in COLUMN_KEYS.items():
        jobs_at = _jobs_at(tjobs, method, sep)
        expected = any((method, sep, n) in expect for n in noises)
        for row in PAPER_ROWS:
            for metric in PAPER_METRICS:
                cell = _aggregate(jobs_at, noises, seeds, row, METRIC_KEYS[metric], expected)
                if method not in IMPLEMENTED_METHODS and not any(jobs_at.values()):
                    cell.status = "not implemented"
                cell.paper = paper_value(table, column, row, metric)
                cells[(row, column, metric)] = cell
    unattributed = [
        j for j in jobs if j.status != "ok" and j.task in (None, "speech") and table_of_noise(j.noise) is None
    ]
    return SpeechTable(
        table=table,
        cells=cells,
        seeds=seeds,
        jobs=tjobs,
        header=_header(tjobs, seeds),
        unattributed=unattributed,
    )


def build_ablation(
    jobs: Sequence[Job], table: str, expect: set[tuple[str, str, str]] | None = None
) -> AblationTable:
    """SDR and PESQ of every (method, separator) in a table's setting, and of the unprocessed input.

    The input row averages ``sdr_input``/``pesq_nb_input`` over every finished job of a (noise, seed) (they
    score the same mixtures), then over noises and seeds like the other rows.
    """
    expect = default_expect([table]) if expect is None else expect
    tjobs = _table_jobs(jobs, table)
    seeds = sorted({j.seed for j in tjobs}, key=_seed_sort_key)
    noises = TABLE_NOISES[table]
    pairs = {(j.method, j.separator) for j in tjobs if j.method and j.separator}
    # Expected methods this package cannot run yet stay out of the ablation (the paper table marks them).
    pairs |= {(m, s) for (m, s, n) in expect if n in noises and m in IMPLEMENTED_METHODS}
    rows = sorted(pairs) + [INPUT_ROW]  # type: ignore[arg-type]
    cells: dict[tuple[tuple[str, str], str, str], Cell] = {}
    for pair in rows:
        if pair == INPUT_ROW:
            jobs_at = _jobs_at([j for j in tjobs if j.status == "ok"])
            expected = True
        else:
            jobs_at = _jobs_at(tjobs, *pair)
            expected = any((pair[0], pair[1], n) in expect for n in noises)
        for row in PAPER_ROWS:
            for label, (key, input_key) in ABLATION_METRICS.items():
                k = input_key if pair == INPUT_ROW else key
                cells[(pair, row, label)] = _aggregate(jobs_at, noises, seeds, row, k, expected)
    return AblationTable(table=table, rows=rows, cells=cells)


# ------------------------------------------------------------------------------------------- rendering
def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _ours_text(cell: Cell) -> str:
    if not math.isfinite(cell.ours):
        return cell.status
    text = _fmt(cell.ours)
    if cell.std is not None:
        text += f" ± {cell.std:.2f}"
    if cell.status != "ok":
        text += f" [{cell.status}]"
    return text


def _md_cell(cell: Cell) -> str:
    ours = _ours_text(cell)
    if cell.paper is None:
        return ours
    if cell.diff is None:
        return f"{ours} (paper {_fmt(cell.paper)})"
    return f"{ours} (paper {_fmt(cell.paper)}, {_fmt(cell.diff, signed=True)})"


def _column_notes(cells: Mapping[tuple[Any, str, str], Cell], rows: Sequence[Any]) -> list[str]:
    notes: dict[Any, list[str]] = defaultdict(list)
    for (col, _row, _metric), cell in cells.items():
        if cell.note and cell.note not in notes[col]:
            notes[col].append(cell.note)
    return [f"{_label(col)}: {'; '.join(notes[col])}" for col in rows if notes.get(col)]


def _label(col: Any) -> str:
    if isinstance(col, tuple):
        return "input (unprocessed mixture)" if col == INPUT_ROW else f"{col[0]} + {col[1]}"
    return str(col)


def _job_lines(jobs: Sequence[Job]) -> list[str]:
    return [f"{j.describe()} [{j.status}] {j.path}: {j.error}" for j in jobs if j.status != "ok"]


def render_markdown(result: SpeechTable) -> str:
    """The table in Markdown: each cell ``ours [± std] (paper P, +diff)``, then notes and failed jobs."""
    out = io.StringIO()
    out.write(f"# {TABLE_TITLES[result.table]}\n\n")
    for line in result.header:
        out.write(f"- {line}\n")
    out.write(
        "- Cells: ours (mean over seeds, ± sample std when more than one seed) (paper value, ours - paper). "
        "PESQ is raw narrow-band P.862 MOS. Marks: partial = some seeds incomplete; failed / missing / "
        "not implemented / not run = no value.\n\n"
    )
    header = ["SNR (dB)"] + [f"{c} {METRIC_LABELS[m]}" for c in PAPER_COLUMNS for m in PAPER_METRICS]
    out.write("| " + " | ".join(header) + " |\n")
    out.write("|" + "|".join(["---"] * len(header)) + "|\n")
    for row in PAPER_ROWS:
        cells = [_md_cell(result.cells[(row, c, m)]) for c in PAPER_COLUMNS for m in PAPER_METRICS]
        out.write(f"| {row} | " + " | ".join(cells) + " |\n")
    seeds_line = ", ".join(
        f"{c} {max(result.cells[(r, c, m)].n_seeds for r in PAPER_ROWS for m in PAPER_METRICS)}"
        for c in PAPER_COLUMNS
    )
    out.write(f"\nSeeds averaged per column: {seeds_line}\n")
    by_col = {(c, r, m): cell for (r, c, m), cell in result.cells.items()}
    notes = _column_notes(by_col, PAPER_COLUMNS)
    if notes:
        out.write("\n## Incomplete cells\n\n" + "".join(f"- {n}\n" for n in notes))
    problems = _job_lines(result.problem_jobs)
    if problems:
        out.write("\n## Failed or missing jobs\n\n" + "".join(f"- {p}\n" for p in problems))
    if result.unattributed:
        out.write(
            "\n## Failed or missing jobs that could not be attributed to a cell\n\n"
            + "".join(f"- [{j.status}] {j.path}: {j.error}\n" for j in result.unattributed)
        )
    return out.getvalue()


CSV_FIELDS = ("table", "snr", "column", "metric", "ours", "paper", "diff", "n_seeds", "status", "std", "note")


def _num(value: float | None) -> str:
    """Full precision for CSV, rounded to 10 decimals to drop float noise (2.0 - 1.98 = 0.020000000000000018)."""
    return "" if value is None or not math.isfinite(value) else repr(round(float(value), 10))


def render_csv(result: SpeechTable) -> str:
    """Long-format CSV, one line per cell: ``table, snr, column, metric, ours, paper, diff, n_seeds, status,
    std, note`` (empty fields for no value)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in PAPER_ROWS:
        for column in PAPER_COLUMNS:
            for metric in PAPER_METRICS:
                cell = result.cells[(row, column, metric)]
                writer.writerow(
                    [
                        result.table,
                        row,
                        column,
                        metric,
                        _num(cell.ours),
                        _num(cell.paper),
                        _num(cell.diff),
                        cell.n_seeds,
                        cell.status,
                        _num(cell.std),
                        cell.note,
                    ]
                )
    return buf.getvalue()


def _tex_escape(text: str) -> str:
    for a, b in (("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("$", r"\$"), ("±", r"$\pm$")):
        text = text.replace(a, b)
    return text


def _tex_cell(cell: Cell) -> str:
    if math.isfinite(cell.ours):
        top = _fmt(cell.ours) + (r"$^\ast$" if cell.status != "ok" else "")
    else:
        top = r"\textit{" + cell.status + "}"
    if cell.paper is None:
        return top
    bottom = _fmt(cell.paper) + (f", ${_fmt(cell.diff, signed=True)}$" if cell.diff is not None else "")
    return r"\begin{tabular}[c]{@{}c@{}}" + top + r"\\{\scriptsize (" + bottom + r")}\end{tabular}"


def render_latex(result: SpeechTable) -> str:
    """A booktabs LaTeX table (needs ``booktabs`` and ``graphicx``); each cell: ours over (paper, diff)."""
    out = io.StringIO()
    out.write("% Generated by vaenmf-report. Needs \\usepackage{booktabs,graphicx}.\n")
    for line in result.header:
        out.write(f"% {line}\n")
    out.write("\\begin{table}[t]\n\\centering\n")
    caption = _tex_escape(TABLE_TITLES[result.table])
    out.write(
        f"\\caption{{{caption}. Each cell: ours (paper, ours $-$ paper); PESQ is raw narrow-band P.862 MOS; "
        f"$^\\ast$ marks cells where some seeds are incomplete. Seeds: "
        f"{_tex_escape(', '.join('?' if s is None else str(s) for s in result.seeds) or 'none')}.}}\n"
    )
    out.write(f"\\label{{tab:{result.table}}}\n\\resizebox{{\\textwidth}}{{!}}{{%\n")
    n = len(PAPER_METRICS)
    out.write("\\begin{tabular}{l" + (" " + "c" * n) * len(PAPER_COLUMNS) + "}\n\\toprule\n")
    out.write(
        "SNR (dB) & " + " & ".join(f"\\multicolumn{{{n}}}{{c}}{{{c}}}" for c in PAPER_COLUMNS) + " \\\\\n"
    )
    out.write(
        " ".join(f"\\cmidrule(lr){{{2 + i * n}-{1 + (i + 1) * n}}}" for i in range(len(PAPER_COLUMNS))) + "\n"
    )
    out.write(" & " + " & ".join(METRIC_LABELS[m] for _ in PAPER_COLUMNS for m in PAPER_METRICS) + " \\\\\n")
    out.write("\\midrule\n")
    for row in PAPER_ROWS:
        if row == "Aver":
            out.write("\\midrule\n")
        label = "Aver" if row == "Aver" else f"${row}$"
        cells = [_tex_cell(result.cells[(row, c, m)]) for c in PAPER_COLUMNS for m in PAPER_METRICS]
        out.write(label + " & " + " & ".join(cells) + " \\\\\n")
    out.write("\\bottomrule\n\\end{tabular}}\n\\end{table}\n")
    return out.getvalue()


def render_ablation_markdown(ablations: Sequence[AblationTable]) -> str:
    """Every (method, separator) x SNR: SDR and PESQ, with the unprocessed input, one section per setting."""
    out = io.StringIO()
    out.write("# Ablation: every dictionary x activation estimator\n\n")
    out.write(
        "SDR (dB) and PESQ (raw narrow-band MOS), mean over noises then seeds (± sample std). "
        "`input` is the unprocessed mixture.\n"
    )
    for ab in ablations:
        out.write(f"\n## {TABLE_TITLES[ab.table]}\n\n")
        header = ["method + separator"] + [
            f"{label} {row}" for label in ABLATION_METRICS for row in PAPER_ROWS
        ]
        out.write("| " + " | ".join(header) + " |\n|" + "|".join(["---"] * len(header)) + "|\n")
        for pair in ab.rows:
            cells = [
                _ours_text(ab.cells[(pair, row, label)]) for label in ABLATION_METRICS for row in PAPER_ROWS
            ]
            out.write(f"| {_label(pair)} | " + " | ".join(cells) + " |\n")
        by_pair = {(p, r, m): c for (p, r, m), c in ab.cells.items()}
        notes = _column_notes(by_pair, ab.rows)
        if notes:
            out.write("\n" + "".join(f"- {n}\n" for n in notes))
    return out.getvalue()


ABLATION_CSV_FIELDS = (
    "table",
    "snr",
    "method",
    "separator",
    "metric",
    "ours",
    "std",
    "n_seeds",
    "status",
    "note",
)


def render_ablation_csv(ablations: Sequence[AblationTable]) -> str:
    """Long-format CSV of the ablation (method/separator ``input``/``unprocessed`` for the mixture)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(ABLATION_CSV_FIELDS)
    for ab in ablations:
        for pair in ab.rows:
            for label in ABLATION_METRICS:
                for row in PAPER_ROWS:
                    cell = ab.cells[(pair, row, label)]
                    writer.writerow(
                        [
                            ab.table,
                            row,
                            pair[0],
                            pair[1],
                            label.lower(),
                            _num(cell.ours),
                            _num(cell.std),
                            cell.n_seeds,
                            cell.status,
                            cell.note,
                        ]
                    )
    return buf.getvalue()


def speech_tables_present(jobs: Iterable[Job]) -> list[str]:
    """The tables (``table1``/``table2``) that have at least one speech job."""
    present = {table_of_noise(j.noise) for j in jobs if _is_speech(j)}
    return [t for t in TABLE_NOISES if t in present]


def write_speech_report(
    jobs: Sequence[Job],
    out_dir: str | os.PathLike[str],
    tables: Sequence[str] | None = None,
    expect: set[tuple[str, str, str]] | None = None,
) -> list[Path]:
    """Write ``{table}.md``, ``{table}.csv``, ``{table}.tex`` for each table and ``ablation.md``/``.csv``.

    Args:
        jobs: From :func:`load_jobs`.
        out_dir: Created if needed.
        tables: Which tables; None for every table that has a speech job or an expected one.
        expect: Expected ``(method, separator, noise)`` grid; None for the paper's four columns in every
            written table.

    Returns:
        The files written.

    Raises:
        ConfigError: If a table name is unknown.
        DataError: If there is nothing to report (no speech job and no table asked for).
    """
    if tables is None:
        wanted = set(speech_tables_present(jobs))
        if expect:
            wanted |= {table_of_noise(n) for (_, _, n) in expect} - {None}  # type: ignore[arg-type]
        tables = [t for t in TABLE_NOISES if t in wanted]
    for t in tables:
        if t not in TABLE_NOISES:
            raise ConfigError(f"unknown table {t!r}; expected one of {', '.join(TABLE_NOISES)}")
    if not tables:
        raise DataError(
            "no speech-enhancement job found (metrics.json with task 'speech' and noise factory, babble or "
            "pooled); nothing to report"
        )
    if expect is None:
        expect = default_expect(tables)
    # Speech jobs only (a synergy job of the same method and seed is not a duplicate); warn about duplicates once.
    jobs = _dedupe(j for j in jobs if j.task in (None, "speech"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    ablations = []
    for t in tables:
        result = build_table(jobs, t, expect)
        written.append(write_text_atomic(out / f"{t}.md", render_markdown(result)))
        written.append(write_text_atomic(out / f"{t}.csv", render_csv(result)))
        written.append(write_text_atomic(out / f"{t}.tex", render_latex(result)))
        ablations.append(build_ablation(jobs, t, expect))
    written.append(write_text_atomic(out / "ablation.md", render_ablation_markdown(ablations)))
    written.append(write_text_atomic(out / "ablation.csv", render_ablation_csv(ablations)))
    return written
