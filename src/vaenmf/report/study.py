"""Studies that choose a default: one row per value of the varied config keys, scored like the paper's tables.

A study is one multirun that varies some config keys (``dictionary.system.likelihood``, ``activations.mask_power``,
...) for one method; every job is read with :func:`~vaenmf.report.jobs.load_jobs`, grouped by the values its
recorded config has for the varied keys, and each group is aggregated exactly like a table cell (mean over noises,
then over seeds, :func:`~vaenmf.report.aggregate.aggregate_cell`, with the same 95% intervals). Extra per-job
numbers of ``metrics.json`` (for example a dictionary's final negative-weight mass) are averaged over the group's
finished jobs.

Every row names the split its jobs were scored on, and jobs of two splits never share a row. A study that
chooses a default must be scored on the validation split: :func:`write_study_report` with
``require_split="validation"`` (what ``scripts/study.py`` passes) refuses jobs scored on any other split.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaenmf.atomic import write_text_atomic
from vaenmf.errors import DataError
from vaenmf.report.aggregate import Cell, aggregate_cell, split_line
from vaenmf.report.jobs import EVAL_SPLITS, Job, dedupe, lookup, to_float
from vaenmf.report.paper import PAPER_ROWS

__all__ = ["StudyRow", "study_rows", "render_study_markdown", "write_study_report"]

#: Metric columns of a study table: label -> (summary key, rows shown).
STUDY_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "SDR": ("sdr", PAPER_ROWS),
    "PESQ-NB": ("pesq_nb", ("Aver",)),
    "STOI": ("stoi", ("Aver",)),
}


@dataclass
class StudyRow:
    """One value combination of the varied keys.

    Attributes:
        values: Varied key -> value (as recorded in the jobs' configs).
        eval_split: The split every job of the row was scored on.
        jobs: The jobs that ran it (every seed and noise).
        cells: ``(metric label, row) -> Cell`` (``row`` an SNR or ``Aver``).
        extras: Extra ``metrics.json`` key -> mean over the finished jobs (NaN when none has it).
        wall_time_s: Mean wall time of the finished jobs.
    """

    values: dict[str, Any]
    eval_split: str
    jobs: list[Job]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    extras: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = math.nan

    @property
    def status(self) -> str:
        return "ok" if all(j.status == "ok" for j in self.jobs) else "incomplete"


def _value_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def study_rows(
    jobs: Sequence[Job],
    keys: Sequence[str],
    extras: Sequence[str] = (),
    require_split: str | None = None,
) -> list[StudyRow]:
    """Group ``jobs`` by the split they were scored on and the values of ``keys`` in their configs, and aggregate
    each group.

    Args:
        jobs: From :func:`~vaenmf.report.jobs.load_jobs` (speech jobs of one study).
        keys: Dotted config keys the study varies (e.g. ``dictionary.system.likelihood``).
        extras: Dotted ``metrics.json`` keys to average per row.
        require_split: When given, every job must have been scored on this split.

    Raises:
        DataError: If no job records the varied keys, or a job was scored on another split than
            ``require_split``.
    """
    if require_split is not None and require_split not in EVAL_SPLITS:
        raise DataError(f"unknown split {require_split!r}; expected one of {', '.join(EVAL_SPLITS)}")
    groups: dict[str, list[Job]] = defaultdict(list)
    values_of: dict[str, tuple[str, dict[str, Any]]] = {}
    for job in dedupe(jobs, keys):
        config = job.data.get("config") or {}
        values = {key: lookup(config, key) for key in keys}
        if all(v is None for v in values.values()):
            continue
        signature = _value_key([job.eval_split, values])
        groups[signature].append(job)
        values_of[signature] = (job.eval_split, values)
    if not groups:
        raise DataError(f"no job records the varied keys {list(keys)} in its metrics.json config")
    if require_split is not None:
        wrong = sorted(
            (j for group in groups.values() for j in group if j.eval_split != require_split),
            key=lambda j: str(j.path),
        )
        if wrong:
            raise DataError(
                f"{len(wrong)} job(s) of this study were scored on the {wrong[0].eval_split} split (first: "
                f"{wrong[0].path}); a study that chooses a default is scored on the {require_split} split only: "
                f"rerun it with eval_split={require_split}"
            )
    rows = []
    order = sorted(groups, key=lambda s: (values_of[s][0], [str(v) for v in values_of[s][1].values()]))
    for signature in order:
        group = groups[signature]
        split, values = values_of[signature]
        row = StudyRow(values=values, eval_split=split, jobs=group)
        noises = sorted({j.noise for j in group if j.noise})
        seeds = sorted({j.seed for j in group if j.seed is not None})
        jobs_at: dict[tuple[str, int | None], list[Job]] = defaultdict(list)
        for job in group:
            jobs_at[(job.noise, job.seed)].append(job)  # type: ignore[index]
        for label, (key, snr_rows) in STUDY_METRICS.items():
            for snr in snr_rows:
                row.cells[(label, snr)] = aggregate_cell(jobs_at, noises, seeds, snr, key, expected=True)
        finished = [j for j in group if j.status == "ok"]
        for extra in extras:
            found = [to_float(lookup(j.data, extra)) for j in finished]
            found = [v for v in found if math.isfinite(v)]
            row.extras[extra] = float(np.mean(found)) if found else math.nan
        times = [t for t in (to_float(j.data.get("wall_time_s")) for j in finished) if math.isfinite(t)]
        row.wall_time_s = float(np.mean(times)) if times else math.nan
        rows.append(row)
    return rows


def _fmt(value: float, digits: int = 2) -> str:
    return "" if not math.isfinite(value) else f"{value:.{digits}f}"


def _cell_text(cell: Cell) -> str:
    if not math.isfinite(cell.ours):
        return cell.status
    text = _fmt(cell.ours)
    text += f" [{_fmt(cell.ci.lo)}, {_fmt(cell.ci.hi)}]" if cell.ci is not None else " [no interval]"
    return text if cell.status == "ok" else f"{text} ({cell.status})"


def render_study_markdown(rows: Sequence[StudyRow], title: str, notes: Sequence[str] = ()) -> str:
    """A Markdown table: one line per split and value combination, SDR per SNR and on average, PESQ, STOI,
    extras, each cell with its 95% interval; the title names the split(s) the rows were scored on."""
    keys = list(rows[0].values) if rows else []
    extras = list(rows[0].extras) if rows else []
    columns = [label if len(snrs) == 1 else f"{label} {snr}" for label, (_, snrs) in STUDY_METRICS.items()
               for snr in snrs]  # fmt: skip
    header = ["scored on", *keys, *columns, *extras, "wall time (s)", "jobs"]
    splits = sorted({row.eval_split for row in rows})
    out = io.StringIO()
    out.write(f"# {title} [{', '.join(splits) or 'no'} split]\n\n")
    for split in splits:
        out.write(f"- {split_line(split)}\n")
    for note in notes:
        out.write(f"- {note}\n")
    out.write(
        "- Cells: mean over noises, then seeds [95% interval over utterances and seeds, as in the paper's "
        "tables: see vaenmf.report.uncertainty].\n\n"
    )
    out.write("| " + " | ".join(header) + " |\n|" + "|".join(["---"] * len(header)) + "|\n")
    for row in rows:
        cells = [
            _cell_text(row.cells[(label, snr)]) for label, (_, snrs) in STUDY_METRICS.items() for snr in snrs
        ]
        ok = sum(j.status == "ok" for j in row.jobs)
        line = [
            row.eval_split,
            *(str(row.values[k]) for k in keys),
            *cells,
            *(_fmt(row.extras[e], 4) for e in extras),
            _fmt(row.wall_time_s, 0),
            f"{ok}/{len(row.jobs)} ok",
        ]
        out.write("| " + " | ".join(line) + " |\n")
    problems = [j for row in rows for j in row.jobs if j.status != "ok"]
    if problems:
        out.write("\n## Failed or missing jobs\n\n")
        out.write("".join(f"- [{j.status}] {j.path}: {j.error}\n" for j in problems))
    return out.getvalue()


def _row_record(row: StudyRow) -> dict[str, Any]:
    return {
        "values": row.values,
        "eval_split": row.eval_split,
        "status": row.status,
        "cells": {
            f"{label}/{snr}": {
                "mean": c.ours,
                "lo": None if c.ci is None else c.ci.lo,
                "hi": None if c.ci is None else c.ci.hi,
                "std": c.std,
                "n_seeds": c.n_seeds,
                "status": c.status,
            }
            for (label, snr), c in row.cells.items()
        },
        "extras": row.extras,
        "wall_time_s": row.wall_time_s,
        "jobs": [str(j.path) for j in row.jobs],
    }


def write_study_report(
    jobs: Sequence[Job],
    keys: Sequence[str],
    out_dir: str | os.PathLike[str],
    title: str,
    extras: Sequence[str] = (),
    notes: Sequence[str] = (),
    require_split: str | None = None,
) -> list[Path]:
    """Write ``table.md`` and ``table.json`` of a study into ``out_dir``; returns the files written.

    Args:
        jobs, keys, extras: As for :func:`study_rows`.
        out_dir: Created if needed.
        title: The table's title (the split is appended).
        notes: Lines written under the title.
        require_split: When given, refuse jobs scored on another split (DataError; nothing is written).
    """
    rows = study_rows(jobs, keys, extras, require_split)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = write_text_atomic(out / "table.md", render_study_markdown(rows, title, notes))
    record = {
        "title": title,
        "keys": list(keys),
        "eval_splits": sorted({r.eval_split for r in rows}),
        "notes": list(notes),
        "rows": [_row_record(r) for r in rows],
    }
    js = write_text_atomic(
        out / "table.json", json.dumps(record, indent=2, default=str, allow_nan=True) + "\n"
    )
    return [md, js]
