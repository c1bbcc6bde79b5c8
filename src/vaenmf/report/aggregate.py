"""Aggregation of speech jobs into table cells (the paper's Tables 1 and 2, and the ablation).

Per table cell (paper column, SNR row, metric):

1. per job (one method, noise, seed): the mean over utterances, read from ``summary[snr]``;
2. per seed: the mean over the table's noise types (Table 1: factory and babble, both required; Table 2:
   pooled);
3. over seeds: the mean, with the sample standard deviation (ddof=1) when there are two or more seeds.

The "Aver" row is, per seed, the mean of the four SNR rows (as in the paper), then averaged over seeds. A cell
is ``ok`` when every seed seen anywhere in the table is complete, ``partial`` when only some are (the value is
the mean over the complete seeds), and otherwise ``failed``, ``not implemented`` (the jobs failed with
NotImplementedError), ``missing`` (an expected job has no result) or ``not run`` (not expected, no job). A
metric that has no meaning for what the cell scores (the unprocessed mixture's SAR: the mixture has no
artefacts, so its SAR is numerically infinite, about 150 dB) is ``n/a``, never averaged.

Every cell carries its 95% interval over utterances and seeds, computed from the same seeds' per-utterance rows
(:mod:`vaenmf.report.uncertainty`) and centred on the cell's value; a cell whose jobs have no per-utterance
rows has none (``ci_note`` says why).

A table is built from the jobs of one ``eval_split`` only (``test`` or ``validation``): validation and test
scores are never averaged into one cell.

The paper's PESQ column is compared with our ``pesq_nb`` (raw narrow-band P.862 MOS, see
:func:`vaenmf.metrics.pesq_scores`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from vaenmf.data.shortfalls import summarise_shortfalls
from vaenmf.errors import ConfigError
from vaenmf.report.grid import TABLE_NOISES, Expected, default_expect, is_speech, matches, table_of
from vaenmf.report.jobs import DEFAULT_EVAL_SPLIT, EVAL_SPLITS, Job, dedupe
from vaenmf.report.paper import PAPER_COLUMNS, PAPER_METRICS, PAPER_ROWS, PAPER_SNRS, paper_value
from vaenmf.report.uncertainty import Interval, interval, job_slots, unit_values

__all__ = [
    "Cell",
    "SpeechTable",
    "AblationTable",
    "METRIC_KEYS",
    "ABLATION_METRICS",
    "INPUT_ROW",
    "NOT_APPLICABLE",
    "aggregate_cell",
    "build_table",
    "build_ablation",
    "table_jobs",
    "check_split",
    "split_line",
]

#: Paper metric -> key in a job's ``summary[snr]``.
METRIC_KEYS: dict[str, str] = {"sdr": "sdr", "sir": "sir", "sar": "sar", "pesq": "pesq_nb"}
#: Ablation metrics: label -> (key for a method's estimate, key for the unprocessed input).
ABLATION_METRICS: dict[str, tuple[str, str]] = {
    "SDR": ("sdr", "sdr_input"),
    "SIR": ("sir", "sir_input"),
    "SAR": ("sar", "sar_input"),
    "PESQ": ("pesq_nb", "pesq_nb_input"),
}
#: The ablation's row for the unprocessed mixture.
INPUT_ROW = "input"
#: Metric keys that are not averaged, with the reason shown instead.
NOT_APPLICABLE: dict[str, str] = {
    "sar_input": "SAR of the unprocessed mixture: not applicable (it has no artefacts, so its SAR is numerically "
    "infinite, about 150 dB)",
}

JobsAt = Mapping[tuple[str, int | None], Sequence[Job]]


@dataclass
class Cell:
    """One aggregated table cell.

    Attributes:
        ours: Mean over complete seeds (NaN when none).
        std: Sample std over seeds (ddof=1), None with fewer than two seeds.
        n_seeds: Number of complete seeds averaged.
        status: ``ok``, ``partial``, ``failed``, ``not implemented``, ``missing``, ``not run`` or ``n/a``.
        note: What is incomplete, e.g. ``"seed 1: babble failed"``, or why the cell is ``n/a``.
        paper: The published value (None when the paper has no such cell).
        ci: The 95% interval over utterances and seeds (:mod:`vaenmf.report.uncertainty`), None when the jobs
            have no per-utterance rows.
        ci_note: Why there is no interval (empty when there is one, or when there is no value at all).
    """

    ours: float
    std: float | None
    n_seeds: int
    status: str
    note: str = ""
    paper: float | None = None
    ci: Interval | None = None
    ci_note: str = ""

    @property
    def diff(self) -> float | None:
        if self.paper is None or not math.isfinite(self.ours):
            return None
        return self.ours - self.paper


@dataclass
class SpeechTable:
    """An aggregated Table 1 or 2.

    Attributes:
        table: ``"table1"`` or ``"table2"``.
        eval_split: The split every job of the table was scored on (``test`` or ``validation``).
        cells: ``(row, column, metric) -> Cell`` for rows :data:`PAPER_ROWS`, paper columns and paper metrics.
        seeds: Every seed seen in the table's jobs.
        jobs: The table's jobs (after removing duplicates).
        header: Provenance lines (corpus, seeds, commits, jobs).
        unattributed: Failed or missing jobs whose noise condition (hence table) is unknown.
    """

    table: str
    cells: dict[tuple[str, str, str], Cell]
    seeds: list[int | None]
    jobs: list[Job]
    header: list[str]
    unattributed: list[Job] = field(default_factory=list)
    eval_split: str = DEFAULT_EVAL_SPLIT

    @property
    def problem_jobs(self) -> list[Job]:
        return [j for j in self.jobs if j.status != "ok"]


@dataclass
class AblationTable:
    """SDR, SIR, SAR and PESQ of every method present, plus the unprocessed input, for one table setting.

    Attributes:
        table: ``"table1"`` or ``"table2"`` (which noise setting).
        rows: Method names; :data:`INPUT_ROW` is the unprocessed mixture.
        labels: Row -> what the method composes (e.g. ``"nmf dictionaries + dnn activations"``).
        cells: ``(row, snr_row, metric_label) -> Cell``.
        eval_split: The split every job was scored on.
    """

    table: str
    rows: list[str]
    labels: dict[str, str]
    cells: dict[tuple[str, str, str], Cell]
    eval_split: str = DEFAULT_EVAL_SPLIT


def _group_status(jobs: Sequence[Job]) -> str:
    if not jobs:
        return "missing"
    if all(j.not_implemented for j in jobs):
        return "not implemented"
    if any(j.status == "failed" for j in jobs):
        return "failed"
    return "missing"


def aggregate_cell(
    jobs_at: JobsAt,
    noises: Sequence[str],
    seeds: Sequence[int | None],
    row: str,
    key: str,
    expected: bool,
) -> Cell:
    """One cell: mean over noises (all required) per seed, then over seeds, with its 95% interval.

    Args:
        jobs_at: ``(noise, seed)`` -> the jobs of the cell's column or row.
        noises: The noise conditions averaged (all required for a seed to count).
        seeds: Every seed of the table.
        row: An SNR label, or ``"Aver"`` for the mean of the paper's four SNRs.
        key: The ``summary[snr]`` key (``sdr``, ``pesq_nb``, ...), also the per-utterance rows' key.
        expected: Whether a cell without any job is ``missing`` (else ``not run``).

    The interval uses the per-utterance rows of the jobs averaged, over the same complete seeds
    (:mod:`vaenmf.report.uncertainty`); where several jobs score one (noise, seed), as in the ablation's input
    row, the first of them with rows gives the per-utterance values (they score the same mixtures).
    """
    if key in NOT_APPLICABLE:
        return Cell(ours=math.nan, std=None, n_seeds=0, status="n/a", note=NOT_APPLICABLE[key])
    snrs = PAPER_SNRS if row == "Aver" else (row,)
    per_seed: list[float] = []
    used: list[list[Job]] = []  # per complete seed: the job that gave each noise's value
    issues: list[str] = []
    problem_jobs: list[Job] = []
    for seed in seeds:
        seed_label = "?" if seed is None else str(seed)
        noise_values: list[float] = []
        noise_jobs: list[Job] = []
        for noise in noises:
            group = list(jobs_at.get((noise, seed), ()))
            ok = [j for j in group if j.status == "ok"]
            values = []
            finite_jobs = []
            for j in ok:
                snr_vals = [j.summary.get(snr, {}).get(key, math.nan) for snr in snrs]
                if all(math.isfinite(v) for v in snr_vals):
                    values.append(float(np.mean(snr_vals)))
                    finite_jobs.append(j)
            if values:
                noise_values.append(float(np.mean(values)))
                with_rows = [j for j in finite_jobs if j.data.get("rows")]
                noise_jobs.append((with_rows or finite_jobs)[0])
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
            used.append(noise_jobs)
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
    ci, ci_note = _cell_interval(used, snrs, key, ours) if n else (None, "")
    return Cell(ours=ours, std=std, n_seeds=n, status=status, note=note, ci=ci, ci_note=ci_note)


def _cell_interval(
    used: Sequence[Sequence[Job]], snrs: Sequence[str], key: str, centre: float
) -> tuple[Interval | None, str]:
    """The interval of a cell over the per-utterance values of its complete seeds' jobs."""
    groups: list[list[float]] = []
    dropped = 0
    for jobs in used:
        slots, why = job_slots(jobs, snrs, key)
        if slots is None:
            return None, why
        values, n_dropped = unit_values(slots)
        groups.append(values)
        dropped += n_dropped
    return interval(groups, centre=centre, n_dropped=dropped)


def seed_sort_key(seed: int | None) -> tuple[int, int]:
    return (1, 0) if seed is None else (0, seed)


def check_split(eval_split: str) -> str:
    """``eval_split`` itself, or a ConfigError naming the splits there are."""
    if eval_split not in EVAL_SPLITS:
        raise ConfigError(f"unknown eval_split {eval_split!r}; expected one of {', '.join(EVAL_SPLITS)}")
    return eval_split


def table_jobs(jobs: Iterable[Job], table: str, eval_split: str = DEFAULT_EVAL_SPLIT) -> list[Job]:
    """The speech jobs of one table's noise setting scored on ``eval_split``, one per (method, noise, seed); a job
    tested on another noise than it was trained on belongs to no table (:func:`~vaenmf.report.grid.table_of`)."""
    check_split(eval_split)
    return dedupe(j for j in jobs if is_speech(j) and table_of(j) == table and j.eval_split == eval_split)


def _jobs_at(jobs: Iterable[Job], key: str | None = None) -> dict[tuple[str, int | None], list[Job]]:
    """Jobs by (noise, seed), of the column or method ``key`` (every job when None)."""
    out: dict[tuple[str, int | None], list[Job]] = defaultdict(list)
    for j in jobs:
        if key is None or matches(j, key):
            out[(j.noise, j.seed)].append(j)  # type: ignore[index]
    return out


def _header(jobs: Sequence[Job], seeds: Sequence[int | None], eval_split: str) -> list[str]:
    lines: list[str] = [split_line(eval_split)]
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
    short = summarise_shortfalls(j.shortfalls for j in jobs if j.status == "ok")
    if short:
        lines.append(short)
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


def split_line(eval_split: str) -> str:
    """The provenance line that says which split a table was scored on."""
    if eval_split == "validation":
        return (
            "Scored on: the VALIDATION split (validation speakers and noise segment; not the test set the paper's "
            "tables report)"
        )
    return "Scored on: the test split"


def build_table(
    jobs: Sequence[Job], table: str, expect: Expected | None = None, eval_split: str = DEFAULT_EVAL_SPLIT
) -> SpeechTable:
    """Aggregate the jobs of one table into the paper's layout (a job fills the column it names).

    Args:
        jobs: All jobs (from :func:`~vaenmf.report.jobs.load_jobs`); those of other tables and tasks, and those
            scored on another split, are ignored.
        table: ``"table1"`` or ``"table2"``.
        expect: Expected ``(column or method, noise)`` entries; None for every paper column of this table.
            An expected column without any job is ``missing``, an unexpected one ``not run``.
        eval_split: The split whose jobs make the table (``test`` or ``validation``).

    Returns:
        The table, with the paper's value beside every cell.

    Raises:
        ConfigError: If ``table`` or ``eval_split`` is unknown.
    """
    if table not in TABLE_NOISES:
        raise ConfigError(f"unknown table {table!r}; expected one of {', '.join(TABLE_NOISES)}")
    expect = default_expect([table]) if expect is None else expect
    tjobs = table_jobs(jobs, table, eval_split)
    seeds = sorted({j.seed for j in tjobs}, key=seed_sort_key)
    noises = TABLE_NOISES[table]
    cells: dict[tuple[str, str, str], Cell] = {}
    for column in PAPER_COLUMNS:
        jobs_at = _jobs_at(tjobs, column)
        expected = any((column, n) in expect for n in noises)
        for row in PAPER_ROWS:
            for metric in PAPER_METRICS:
                cell = aggregate_cell(jobs_at, noises, seeds, row, METRIC_KEYS[metric], expected)
                cell.paper = paper_value(table, column, row, metric)
                cells[(row, column, metric)] = cell
    unattributed = [
        j
        for j in jobs
        if j.status != "ok" and j.task in (None, "speech") and j.noise is None and j.eval_split == eval_split
    ]
    return SpeechTable(
        table=table,
        cells=cells,
        seeds=seeds,
        jobs=tjobs,
        header=_header(tjobs, seeds, eval_split),
        unattributed=unattributed,
        eval_split=eval_split,
    )


def method_label(jobs: Sequence[Job], method: str) -> str:
    """What a method composes, from its jobs' ``components`` (e.g. ``nmf dictionaries + dnn activations``)."""
    for job in jobs:
        if job.method == method and job.components:
            return " + ".join(f"{name} {group}" for group, name in job.components.items())
    return ""


def build_ablation(
    jobs: Sequence[Job], table: str, expect: Expected | None = None, eval_split: str = DEFAULT_EVAL_SPLIT
) -> AblationTable:
    """SDR, SIR, SAR and PESQ of every method in a table's setting, and of the unprocessed input.

    The input row averages ``sdr_input``/``sir_input``/``pesq_nb_input`` over every finished job of a (noise,
    seed) (they score the same mixtures), then over noises and seeds like the other rows; its SAR is ``n/a``
    (:data:`NOT_APPLICABLE`). Only the jobs scored on ``eval_split`` are used.
    """
    expect = default_expect([table]) if expect is None else expect
    tjobs = table_jobs(jobs, table, eval_split)
    seeds = sorted({j.seed for j in tjobs}, key=seed_sort_key)
    noises = TABLE_NOISES[table]
    methods = {j.method for j in tjobs if j.method}
    methods |= {key for (key, noise) in expect if noise in noises and key not in PAPER_COLUMNS}
    rows = sorted(methods) + [INPUT_ROW]
    cells: dict[tuple[str, str, str], Cell] = {}
    for method in rows:
        if method == INPUT_ROW:
            jobs_at = _jobs_at([j for j in tjobs if j.status == "ok"])
            expected = True
        else:
            jobs_at = _jobs_at([j for j in tjobs if j.method == method])
            expected = any((method, n) in expect for n in noises)
        for row in PAPER_ROWS:
            for label, (key, input_key) in ABLATION_METRICS.items():
                k = input_key if method == INPUT_ROW else key
                cells[(method, row, label)] = aggregate_cell(jobs_at, noises, seeds, row, k, expected)
    labels = {m: method_label(tjobs, m) for m in rows if m != INPUT_ROW}
    labels[INPUT_ROW] = "unprocessed mixture"
    return AblationTable(table=table, rows=rows, labels=labels, cells=cells, eval_split=eval_split)
