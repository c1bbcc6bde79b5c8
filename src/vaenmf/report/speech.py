"""Writing the speech report: ``table1.{md,csv,tex}``, ``table2.*``, ``ablation.{md,csv}`` and
``differences.{md,csv}`` from jobs, and ``conditions.{md,csv}`` for the noise conditions outside the paper's tables
(other noises, pools, noise files, mismatched-noise jobs: :mod:`vaenmf.report.conditions`).

Validation and test are never mixed: each split the speech jobs were scored on gets its own files, the test
split under the plain names (``table1.md``, ...) and the validation split with a ``_validation`` suffix
(``table1_validation.md``, ``ablation_validation.csv``, ``differences_validation.md``, ...), every one of them
naming its split in its title and CSV rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from vaenmf.atomic import write_text_atomic
from vaenmf.errors import ConfigError, DataError
from vaenmf.report.aggregate import build_ablation, build_table, check_split
from vaenmf.report.conditions import (
    build_conditions,
    other_conditions,
    render_conditions_csv,
    render_conditions_markdown,
)
from vaenmf.report.grid import TABLE_NOISES, Expected, default_expect, is_speech, table_of, table_of_noise
from vaenmf.report.jobs import DEFAULT_EVAL_SPLIT, EVAL_SPLITS, Job, dedupe
from vaenmf.report.paired import build_differences
from vaenmf.report.render import (
    render_ablation_csv,
    render_ablation_markdown,
    render_csv,
    render_differences_csv,
    render_differences_markdown,
    render_latex,
    render_markdown,
)

__all__ = ["speech_tables_present", "speech_splits_present", "split_suffix", "write_speech_report"]


def split_suffix(eval_split: str) -> str:
    """The file-name suffix of a split's tables: none for ``test``, ``_validation`` for validation."""
    return "" if check_split(eval_split) == DEFAULT_EVAL_SPLIT else f"_{eval_split}"


def speech_splits_present(jobs: Iterable[Job]) -> list[str]:
    """The splits (``test``, ``validation``) that have at least one speech job, in that order."""
    present = {j.eval_split for j in jobs if is_speech(j)}
    return [s for s in EVAL_SPLITS if s in present]


def speech_tables_present(jobs: Iterable[Job]) -> list[str]:
    """The tables (``table1``/``table2``) that have at least one speech job."""
    present = {table_of(j) for j in jobs if is_speech(j)}
    return [t for t in TABLE_NOISES if t in present]


def _ran(jobs: Iterable[Job], eval_split: str) -> Expected:
    """The (paper column, or method for an ablation row; noise) entries some job of ``eval_split`` ran."""
    return {
        (j.paper_column or j.method, j.noise)  # type: ignore[misc]
        for j in jobs
        if is_speech(j)
        and j.eval_split == eval_split
        and (j.paper_column or j.method)
        and j.noise
        and table_of(j) is not None
    }


def write_speech_report(
    jobs: Sequence[Job],
    out_dir: str | os.PathLike[str],
    tables: Sequence[str] | None = None,
    expect: Expected | None = None,
    splits: Sequence[str] | None = None,
) -> list[Path]:
    """Write ``{table}.md``, ``{table}.csv``, ``{table}.tex`` for each table, ``ablation.md``/``.csv`` and
    ``differences.md``/``.csv``, once per split (validation files with the suffix ``_validation``), and
    ``conditions.md``/``.csv`` for the split's jobs of conditions outside the paper's tables, when there are any.

    Args:
        jobs: From :func:`~vaenmf.report.jobs.load_jobs`.
        out_dir: Created if needed.
        tables: Which tables; None for every table that has a speech job or an expected one.
        expect: Expected ``(column or method, noise)`` entries; None for the paper's four columns in every
            written table of the test split, and for the validation split the (column or method, noise) entries
            that some validation job ran (a validation sweep is usually a study of one method; the columns it
            did not run are ``not run``, not ``missing``).
        splits: Which splits to write; None for every split a speech job was scored on (``test`` alone when
            there is none).

    Returns:
        The files written.

    Raises:
        ConfigError: If a table or split name is unknown.
        DataError: If there is nothing to report (no speech job and no table asked for).
    """
    others = {split: other_conditions(jobs, split) for split in EVAL_SPLITS}
    if tables is None:
        wanted = set(speech_tables_present(jobs))
        if expect:
            wanted |= {table_of_noise(n) for (_, n) in expect} - {None}  # type: ignore[arg-type]
        tables = [t for t in TABLE_NOISES if t in wanted]
    for t in tables:
        if t not in TABLE_NOISES:
            raise ConfigError(f"unknown table {t!r}; expected one of {', '.join(TABLE_NOISES)}")
    if not tables and not any(others.values()):
        raise DataError(
            "no speech-enhancement job found (metrics.json with task 'speech' and a noise condition); nothing to "
            "report"
        )
    if splits is None:
        splits = speech_splits_present(jobs) or [DEFAULT_EVAL_SPLIT]
    for split in splits:
        check_split(split)
    # Duplicates are warned about once here; the builders then see one job per (method, noise, seed, split).
    speech = dedupe(j for j in jobs if j.task in (None, "speech"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for split in splits:
        suffix = split_suffix(split)
        wanted = expect
        if wanted is None:
            wanted = default_expect(tables) if split == DEFAULT_EVAL_SPLIT else _ran(speech, split)
        if others.get(split):
            conditions = build_conditions(jobs, split)
            written.append(
                write_text_atomic(out / f"conditions{suffix}.md", render_conditions_markdown(conditions))
            )
            written.append(
                write_text_atomic(out / f"conditions{suffix}.csv", render_conditions_csv(conditions))
            )
        in_tables = any(is_speech(j) and table_of(j) and j.eval_split == split for j in speech)
        if not tables or (others.get(split) and not in_tables and expect is None):
            continue  # this split's jobs are all of other conditions: no paper table of "not run" cells
        ablations, differences = [], []
        for t in tables:
            result = build_table(speech, t, wanted, eval_split=split)
            written.append(write_text_atomic(out / f"{t}{suffix}.md", render_markdown(result)))
            written.append(write_text_atomic(out / f"{t}{suffix}.csv", render_csv(result)))
            written.append(write_text_atomic(out / f"{t}{suffix}.tex", render_latex(result)))
            ablations.append(build_ablation(speech, t, wanted, eval_split=split))
            differences.append(build_differences(speech, t, eval_split=split))
        written.append(write_text_atomic(out / f"ablation{suffix}.md", render_ablation_markdown(ablations)))
        written.append(write_text_atomic(out / f"ablation{suffix}.csv", render_ablation_csv(ablations)))
        written.append(
            write_text_atomic(out / f"differences{suffix}.md", render_differences_markdown(differences))
        )
        written.append(
            write_text_atomic(out / f"differences{suffix}.csv", render_differences_csv(differences))
        )
    return written
