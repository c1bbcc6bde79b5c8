"""Writing the speech report: ``table1.{md,csv,tex}``, ``table2.*`` and ``ablation.{md,csv}`` from jobs."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from vaenmf.atomic import write_text_atomic
from vaenmf.errors import ConfigError, DataError
from vaenmf.report.aggregate import build_ablation, build_table
from vaenmf.report.grid import TABLE_NOISES, Expected, default_expect, is_speech, table_of_noise
from vaenmf.report.jobs import Job, dedupe
from vaenmf.report.render import (
    render_ablation_csv,
    render_ablation_markdown,
    render_csv,
    render_latex,
    render_markdown,
)

__all__ = ["speech_tables_present", "write_speech_report"]


def speech_tables_present(jobs: Iterable[Job]) -> list[str]:
    """The tables (``table1``/``table2``) that have at least one speech job."""
    present = {table_of_noise(j.noise) for j in jobs if is_speech(j)}
    return [t for t in TABLE_NOISES if t in present]


def write_speech_report(
    jobs: Sequence[Job],
    out_dir: str | os.PathLike[str],
    tables: Sequence[str] | None = None,
    expect: Expected | None = None,
) -> list[Path]:
    """Write ``{table}.md``, ``{table}.csv``, ``{table}.tex`` for each table and ``ablation.md``/``.csv``.

    Args:
        jobs: From :func:`~vaenmf.report.jobs.load_jobs`.
        out_dir: Created if needed.
        tables: Which tables; None for every table that has a speech job or an expected one.
        expect: Expected ``(column or method, noise)`` entries; None for the paper's four columns in every
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
            wanted |= {table_of_noise(n) for (_, n) in expect} - {None}  # type: ignore[arg-type]
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
    # Duplicates are warned about once here; the builders then see one job per (method, noise, seed).
    speech = dedupe(j for j in jobs if j.task in (None, "speech"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    ablations = []
    for t in tables:
        result = build_table(speech, t, expect)
        written.append(write_text_atomic(out / f"{t}.md", render_markdown(result)))
        written.append(write_text_atomic(out / f"{t}.csv", render_csv(result)))
        written.append(write_text_atomic(out / f"{t}.tex", render_latex(result)))
        ablations.append(build_ablation(speech, t, expect))
    written.append(write_text_atomic(out / "ablation.md", render_ablation_markdown(ablations)))
    written.append(write_text_atomic(out / "ablation.csv", render_ablation_csv(ablations)))
    return written
