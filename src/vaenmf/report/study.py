"""Studies that choose a default: one row per value of the varied config keys, scored like the paper's tables.

A study is one multirun that varies some config keys (``dictionary.system.likelihood``, ``activations.mask_power``,
...) for one method; every job is read with :func:`~vaenmf.report.jobs.load_jobs`, grouped by the values its
recorded config has for the varied keys, and each group is aggregated exactly like a table cell (mean over noises,
then over seeds, :func:`~vaenmf.report.aggregate.aggregate_cell`, with the same 95% intervals). Extra per-job
numbers of ``metrics.json`` (for example a dictionary's final negative-weight mass) are averaged over the group's
finished jobs. A job that crashed before writing its ``metrics.json`` is placed in its row by the config it saved
when it started (``config.yaml``, else ``.hydra/config.yaml``), so that the row shows it as missing.

Every row names the split its jobs were scored on, and jobs of two splits never share a row. A study that
chooses a default must be scored on the validation split: :func:`write_study_report` with
``require_split="validation"`` (what ``scripts/study.py`` passes) refuses the whole table when *any* job of the
sweep folder was scored on another split (:func:`check_split`).

With a ``reference`` (the value combination of the current default, say), every other row also gets the paired
difference ``row - reference`` of the SDR on the very same validation mixtures (same seed, noise, SNR and
utterance; :mod:`vaenmf.report.paired`), with its 95% interval: the sharper test of whether two values differ,
since most of an SDR's spread is the utterance's, not the method's. With a ``default`` (the values the config
tree has now), that row is marked, so the reader sees what a change of default would change.

Synergy studies (:func:`synergy_study_rows`) are scored on *held-out training repetitions*: the jobs fit their
synergies on some training repetitions of the Ninapro protocol and score the VAF of the others (the jobs'
``data.test_repetitions``), never the test repetitions Figure 2 reports. Each movement of each subject is one
unit: a cell is the mean over movements per seed, then over seeds, with the same 95% interval over movements and
seeds (:func:`vaenmf.report.uncertainty.interval`), and paired differences pair the same (seed, subject,
movement). :func:`check_heldout_repetitions` refuses the table when any job fitted on or scored a forbidden
repetition, or scored a repetition it was fitted on.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaenmf.atomic import write_text_atomic
from vaenmf.errors import DataError
from vaenmf.report.aggregate import Cell, aggregate_cell, split_line
from vaenmf.report.jobs import EVAL_SPLITS, Job, _read_yaml, dedupe, lookup, to_float
from vaenmf.report.paired import Difference, _complete, _difference
from vaenmf.report.paper import PAPER_ROWS, PAPER_SNRS
from vaenmf.report.uncertainty import interval

__all__ = [
    "StudyRow",
    "study_rows",
    "synergy_study_rows",
    "check_split",
    "check_heldout_repetitions",
    "heldout_split_label",
    "with_saved_config",
    "render_study_markdown",
    "write_study_report",
]

#: Metric columns of a study table: label -> (summary key, rows shown).
STUDY_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "SDR": ("sdr", PAPER_ROWS),
    "PESQ-NB": ("pesq_nb", ("Aver",)),
    "STOI": ("stoi", ("Aver",)),
}
#: The paired difference a speech study shows against its reference row: (label, summary key, SNR labels).
SPEECH_DIFFERENCE = ("SDR Aver", "sdr", PAPER_SNRS)

#: Metric columns of a synergy study table: label -> (where in a movement's row, key). ``vaf``:
#: ``row["vaf"][key]["overall"]``; ``dictionary``: ``row["dictionary"][key]``; ``row``: ``row[key]``. The
#: jobs' ``test`` repetitions are the held-out training repetitions here.
SYNERGY_METRICS: dict[str, tuple[str, str]] = {
    "held-out VAF, NNLS": ("vaf", "test/fixed_w"),
    "held-out VAF, posterior mean": ("vaf", "test/posterior_mean"),
    "held-out VAF, posterior draw": ("vaf", "test/posterior_sample"),
    "training VAF, NNLS": ("vaf", "train/fixed_w"),
    "neg. mass": ("dictionary", "neg_mass"),
    "neg. fraction": ("dictionary", "neg_fraction"),
    "synergy recovery": ("row", "synergy_recovery"),
}
#: The paired difference a synergy study shows against its reference row.
SYNERGY_DIFFERENCE = "held-out VAF, NNLS"
#: The row label of the synergy cells (one value per movement: no SNR rows).
ALL = "all"


@dataclass
class StudyRow:
    """One value combination of the varied keys.

    Attributes:
        values: Varied key -> value (as recorded in the jobs' configs).
        eval_split: The split every job of the row was scored on (synergies: the held-out repetitions).
        jobs: The jobs that ran it (every seed and noise).
        cells: ``(metric label, SNR label or "all")`` -> the aggregated cell.
        extras: Extra ``metrics.json`` keys -> mean over the finished jobs.
        extras_max: The same keys -> largest value over the finished jobs (for a negative mass, the worst
            dictionary).
        wall_time_s: Mean wall time of the finished jobs.
        difference: The paired difference ``row - reference`` (None for the reference row itself, or when the
            study has no reference); its label is ``difference_label``.
        is_reference: Whether this is the row the differences are taken against.
        is_default: Whether these are the values the config tree has now (the current default).
    """

    values: dict[str, Any]
    eval_split: str
    jobs: list[Job]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    extras: dict[str, float] = field(default_factory=dict)
    extras_max: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = math.nan
    difference: Difference | None = None
    difference_label: str = ""
    is_reference: bool = False
    is_default: bool = False

    @property
    def status(self) -> str:
        return "ok" if all(j.status == "ok" for j in self.jobs) else "incomplete"


def _value_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _sort_key(value: Any) -> tuple[int, float, str]:
    """Numbers in numeric order (50 before 100), then everything else by its text."""
    number = to_float(value)
    if math.isfinite(number):
        return (0, number, "")
    return (1, 0.0, str(value))


def with_saved_config(jobs: Sequence[Job]) -> list[Job]:
    """The jobs, each one whose ``metrics.json`` records no config given the config it saved when it started.

    A job killed before writing ``metrics.json`` (status ``missing``) still has the resolved ``config.yaml`` that
    :func:`vaenmf.train.run_job` writes first, or Hydra's ``.hydra/config.yaml``: with it the job lands in the row
    of its values (shown as missing there) and is checked like the others. The jobs given are not modified.
    """
    out = []
    for job in jobs:
        if job.data.get("config"):
            out.append(job)
            continue
        saved = None
        for path in (job.path / "config.yaml", job.path / ".hydra" / "config.yaml"):
            found = _read_yaml(path)
            if isinstance(found, dict):
                saved = found
                break
        out.append(job if saved is None else dataclasses.replace(job, data={**job.data, "config": saved}))
    return out


def _group(
    jobs: Sequence[Job], keys: Sequence[str], split_of: Any
) -> tuple[dict[str, list[Job]], dict[str, tuple[str, dict[str, Any]]]]:
    """Jobs grouped by (split label, values of ``keys``); ``split_of(job)`` gives the split label."""
    groups: dict[str, list[Job]] = defaultdict(list)
    values_of: dict[str, tuple[str, dict[str, Any]]] = {}
    for job in dedupe(jobs, keys):
        config = job.data.get("config") or {}
        values = {key: lookup(config, key) for key in keys}
        if all(v is None for v in values.values()):
            continue
        split = split_of(job)
        signature = _value_key([split, values])
        groups[signature].append(job)
        values_of[signature] = (split, values)
    if not groups:
        raise DataError(f"no job records the varied keys {list(keys)} in its metrics.json config")
    return groups, values_of


def _ordered(
    groups: Mapping[str, list[Job]], values_of: Mapping[str, tuple[str, dict[str, Any]]]
) -> list[str]:
    """Row order: by split, then by the varied values (numbers numerically)."""
    return sorted(groups, key=lambda s: (values_of[s][0], [_sort_key(v) for v in values_of[s][1].values()]))


def _same_value(recorded: Any, wanted: Any) -> bool:
    """Whether a recorded config value is the wanted one (``1e4`` matches ``10000.0``, ``"1e4"`` too)."""
    if recorded == wanted:
        return True
    a, b = to_float(recorded), to_float(wanted)
    if isinstance(wanted, str) and not math.isfinite(b):
        try:
            b = float(wanted)
        except ValueError:
            return str(recorded) == wanted
    if isinstance(recorded, str) and not math.isfinite(a):
        try:
            a = float(recorded)
        except ValueError:
            return False
    return math.isfinite(a) and math.isfinite(b) and math.isclose(a, b, rel_tol=1e-9)


def _matching(rows: Sequence[StudyRow], values: Mapping[str, Any] | None, what: str) -> list[StudyRow]:
    """The rows whose values are ``values`` (DataError when ``values`` names a key the study does not vary)."""
    if not values:
        return []
    keys = set(rows[0].values) if rows else set()
    unknown = set(values) - keys
    if unknown:
        raise DataError(f"the {what} names {sorted(unknown)}, which the study does not vary ({sorted(keys)})")
    return [r for r in rows if all(_same_value(r.values[k], v) for k, v in values.items())]


def _mark_default(rows: Sequence[StudyRow], default: Mapping[str, Any] | None) -> None:
    for row in _matching(rows, default, "default"):
        row.is_default = True


def _reference_row(rows: Sequence[StudyRow], reference: Mapping[str, Any] | None) -> StudyRow | None:
    """The row whose values are ``reference``; None when there is none (no job of it was found).

    Raises:
        DataError: If the reference names a key the study does not vary, or matches more than one row.
    """
    found = _matching(rows, reference, "reference")
    splits = {r.eval_split for r in found}
    if len(found) > len(splits):
        raise DataError(
            f"the reference {dict(reference or {})} matches {len(found)} rows: give a value for every varied key"
        )
    for row in found:
        row.is_reference = True
    return found[0] if found else None


def _no_reference(rows: Sequence[StudyRow], label: str, reference: Mapping[str, Any]) -> None:
    for row in rows:
        row.difference = Difference(
            math.nan, None, 0, "missing", f"no job of the reference {dict(reference)} was found"
        )
        row.difference_label = label


def check_split(jobs: Sequence[Job], split: str) -> None:
    """Refuse a study whose sweep holds any job scored on another split than ``split``.

    Every job of the folder counts, also one that failed or crashed (its split is read from its overrides): a
    sweep that scored the test split at all is not a study's.

    Raises:
        DataError: Naming how many jobs, and the first of them.
    """
    if split not in EVAL_SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(EVAL_SPLITS)}")
    wrong = sorted((j for j in jobs if j.eval_split != split), key=lambda j: str(j.path))
    if wrong:
        raise DataError(
            f"{len(wrong)} job(s) of this study were scored on the {wrong[0].eval_split} split (first: "
            f"{wrong[0].path}); a study that chooses a default is scored on the {split} split only: "
            f"rerun it with eval_split={split}"
        )


def _speech_complete(row: StudyRow) -> dict[int | None, list[Job]]:
    """Per seed of ``row``: one finished job per noise of the row, when every noise finished."""
    noises = sorted({j.noise for j in row.jobs if j.noise})
    seeds = {j.seed for j in row.jobs}
    out = {}
    for seed in seeds:
        complete = _complete(row.jobs, noises, seed)
        if complete is not None:
            out[seed] = complete
    return out


def study_rows(
    jobs: Sequence[Job],
    keys: Sequence[str],
    extras: Sequence[str] = (),
    require_split: str | None = None,
    reference: Mapping[str, Any] | None = None,
    default: Mapping[str, Any] | None = None,
) -> list[StudyRow]:
    """Group ``jobs`` by the split they were scored on and the values of ``keys`` in their configs, and aggregate
    each group.

    Args:
        jobs: From :func:`~vaenmf.report.jobs.load_jobs` (speech jobs of one study).
        keys: Dotted config keys the study varies (e.g. ``dictionary.system.likelihood``).
        extras: Dotted ``metrics.json`` keys to average per row.
        require_split: When given, every job must have been scored on this split (:func:`check_split`).
        reference: Varied key -> value of the row every other row is compared with (paired SDR difference on
            the same mixtures, averaged over the four SNRs); None: no differences.
        default: Varied key -> the value the config tree has now; that row is marked.

    Raises:
        DataError: If no job records the varied keys, a job was scored on another split than ``require_split``,
            or the reference names a key the study does not vary, or matches several rows.
    """
    if require_split is not None:
        check_split(jobs, require_split)
    groups, values_of = _group(with_saved_config(jobs), keys, lambda job: job.eval_split)
    rows = []
    for signature in _ordered(groups, values_of):
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
        _finish(row, extras)
        rows.append(row)
    _mark_default(rows, default)
    ref = _reference_row(rows, reference)
    label, key, snrs = SPEECH_DIFFERENCE
    if reference and ref is None:
        _no_reference(rows, label, reference)
    elif ref is not None:
        ref_jobs = _speech_complete(ref)
        for row in rows:
            if row is ref or row.eval_split != ref.eval_split:
                continue
            other = _speech_complete(row)
            seeds = sorted({*ref_jobs, *other}, key=lambda s: (s is None, s or 0))
            if not ref_jobs:
                row.difference = Difference(math.nan, None, 0, "missing", "no reference job finished")
            else:
                # paired.py's _difference(a, b, ...) is a - b on the same mixtures: this row minus the reference.
                row.difference = _difference(other, ref_jobs, seeds, snrs, key, key)
            row.difference_label = label
    return rows


def _finish(row: StudyRow, extras: Sequence[str]) -> None:
    """The extras (mean and max over the finished jobs) and the mean wall time of a row."""
    finished = [j for j in row.jobs if j.status == "ok"]
    for extra in extras:
        found = [to_float(lookup(j.data, extra)) for j in finished]
        found = [v for v in found if math.isfinite(v)]
        row.extras[extra] = float(np.mean(found)) if found else math.nan
        row.extras_max[extra] = float(np.max(found)) if found else math.nan
    times = [t for t in (to_float(j.data.get("wall_time_s")) for j in finished) if math.isfinite(t)]
    row.wall_time_s = float(np.mean(times)) if times else math.nan


def _repetitions(job: Job) -> tuple[list[int] | None, list[int] | None]:
    """The training and held-out repetitions a synergy job recorded (None where it recorded none)."""
    data = (job.data.get("config") or {}).get("data") or {}

    def as_list(value: Any) -> list[int] | None:
        if not isinstance(value, (list, tuple)):
            return None
        try:
            return [int(v) for v in value]
        except (TypeError, ValueError):
            return None

    return as_list(data.get("train_repetitions")), as_list(data.get("test_repetitions"))


def heldout_split_label(job: Job) -> str:
    """The split a synergy study job was scored on, e.g. ``repetitions [8, 9] (fit on [1, 3, 4, 6, 7])``."""
    train, held = _repetitions(job)
    return f"repetitions {held} (fit on {train})"


def check_heldout_repetitions(jobs: Sequence[Job], forbidden: Sequence[int]) -> None:
    """Refuse synergy jobs that fitted on, or scored, any of the ``forbidden`` repetitions, or scored one they were
    fitted on.

    Every job of the folder counts, also one that failed or crashed, by the config it recorded or saved when it
    started (:func:`with_saved_config`); a crashed job that saved no config at all says nothing and is passed.

    Args:
        jobs: The study's jobs.
        forbidden: The test repetitions of the protocol (Ninapro: 2, 5, 10), which no choice may see.

    Raises:
        DataError: Naming the first such job, or a job that records no repetitions (or is no synergy job).
    """
    bad = {int(r) for r in forbidden}
    for job in sorted(with_saved_config(jobs), key=lambda j: str(j.path)):
        if job.status != "ok" and not job.data.get("config"):
            continue  # a crashed job without any recorded config contributes nothing
        if job.task != "synergy":
            raise DataError(f"{job.path} is a {job.task} job; a synergy study takes task=synergy jobs only")
        train, held = _repetitions(job)
        if train is None or held is None:
            raise DataError(f"{job.path} records no data.train_repetitions / data.test_repetitions")
        seen = bad & (set(train) | set(held))
        if seen:
            raise DataError(
                f"{job.path} fitted on {train} and scored {held}: it saw the test repetitions {sorted(seen)}; a "
                f"study that chooses a default is scored on held-out training repetitions only (never "
                f"{sorted(bad)})"
            )
        both = set(train) & set(held)
        if both:
            raise DataError(
                f"{job.path} fitted on {train} and scored {held}: repetitions {sorted(both)} are in both, so its "
                "VAF is not held out"
            )


def _movement_value(row: Mapping[str, Any], where: str, key: str) -> float:
    if where == "vaf":
        entry = (row.get("vaf") or {}).get(key) or {}
        return to_float(entry.get("overall"))
    if where == "dictionary":
        return to_float((row.get("dictionary") or {}).get(key))
    return to_float(row.get(key))


def _movements_by_seed(jobs: Sequence[Job]) -> dict[int | None, dict[tuple[Any, Any], Mapping[str, Any]]]:
    """(subject, movement) -> its row, per seed, over the finished jobs (jobs may split the subjects)."""
    out: dict[int | None, dict[tuple[Any, Any], Mapping[str, Any]]] = defaultdict(dict)
    for job in sorted((j for j in jobs if j.status == "ok"), key=lambda j: str(j.path)):
        for row in job.data.get("rows") or []:
            if isinstance(row, Mapping):
                out[job.seed].setdefault((row.get("subject"), row.get("movement")), row)
    return dict(out)


def _seed_order(seed: int | None) -> tuple[bool, int]:
    return (seed is None, seed or 0)


def _unit_cell(groups: list[list[float]], n_expected: int) -> Cell:
    """A cell over per-seed lists of per-unit values: mean of the seed means, with its 95% interval."""
    groups = [g for g in groups if g]
    if not groups:
        return Cell(ours=math.nan, std=None, n_seeds=0, status="missing")
    means = [float(np.mean(g)) for g in groups]
    ci, why = interval(groups)
    status = "ok" if len(groups) == n_expected else "partial"
    std = float(np.std(means, ddof=1)) if len(means) > 1 else None
    return Cell(ours=float(np.mean(means)), std=std, n_seeds=len(groups), status=status, ci=ci, ci_note=why)


def synergy_study_rows(
    jobs: Sequence[Job],
    keys: Sequence[str],
    forbidden: Sequence[int],
    reference: Mapping[str, Any] | None = None,
    default: Mapping[str, Any] | None = None,
) -> list[StudyRow]:
    """One row per value combination of ``keys`` of synergy jobs scored on held-out training repetitions.

    Cells (:data:`SYNERGY_METRICS`): the mean over subjects x movements per seed, then over seeds, with its 95%
    interval over movements and seeds; ``extras_max["neg_mass"]`` holds the largest negative mass of any
    movement's synergies. With a ``reference``, each other row gets the paired difference of the held-out NNLS
    VAF over the same (seed, subject, movement).

    Args:
        jobs: From :func:`~vaenmf.report.jobs.load_jobs` (``task=synergy`` jobs of one study).
        keys: Dotted config keys the study varies.
        forbidden: Repetitions no job may have fitted on or scored (:func:`check_heldout_repetitions`).
        reference, default: As for :func:`study_rows`.

    Raises:
        DataError: As :func:`check_heldout_repetitions`, if no job records the varied keys, or for a bad reference.
    """
    check_heldout_repetitions(jobs, forbidden)
    groups, values_of = _group(with_saved_config(jobs), keys, heldout_split_label)
    rows = []
    for signature in _ordered(groups, values_of):
        split, values = values_of[signature]
        row = StudyRow(values=values, eval_split=split, jobs=groups[signature])
        by_seed = _movements_by_seed(row.jobs)
        seeds = {j.seed for j in row.jobs}
        for label, (where, key) in SYNERGY_METRICS.items():
            per_seed = [
                [v for v in (_movement_value(r, where, key) for r in movements.values()) if math.isfinite(v)]
                for _, movements in sorted(by_seed.items(), key=lambda item: _seed_order(item[0]))
            ]
            row.cells[(label, ALL)] = _unit_cell(per_seed, len(seeds))
        masses = [
            _movement_value(r, "dictionary", "neg_mass")
            for movements in by_seed.values()
            for r in movements.values()
        ]
        masses = [m for m in masses if math.isfinite(m)]
        row.extras_max["neg_mass"] = float(np.max(masses)) if masses else math.nan
        _finish(row, ())
        rows.append(row)
    _mark_default(rows, default)
    ref = _reference_row(rows, reference)
    if reference and ref is None:
        _no_reference(rows, SYNERGY_DIFFERENCE, reference)
    elif ref is not None:
        where, key = SYNERGY_METRICS[SYNERGY_DIFFERENCE]
        ref_by_seed = _movements_by_seed(ref.jobs)
        for row in rows:
            if row is ref or row.eval_split != ref.eval_split:
                continue
            groups_d: list[list[float]] = []
            for seed, movements in sorted(
                _movements_by_seed(row.jobs).items(), key=lambda i: _seed_order(i[0])
            ):
                ref_movements = ref_by_seed.get(seed, {})
                diffs = [
                    _movement_value(r, where, key) - _movement_value(ref_movements[m], where, key)
                    for m, r in sorted(movements.items(), key=lambda item: str(item[0]))
                    if m in ref_movements
                ]
                diffs = [d for d in diffs if math.isfinite(d)]
                if diffs:
                    groups_d.append(diffs)
            if not groups_d:
                row.difference = Difference(math.nan, None, 0, "missing", "no movement scored by both")
            else:
                ci, why = interval(groups_d)
                estimate = float(np.mean([np.mean(g) for g in groups_d]))
                row.difference = Difference(estimate, ci, len(groups_d), "ok", why)
            row.difference_label = SYNERGY_DIFFERENCE
    return rows


def _fmt(value: float, digits: int = 2) -> str:
    return "" if not math.isfinite(value) else f"{value:.{digits}f}"


def _digits(label: str) -> int:
    """Decimals shown for a metric: 2 for dB and MOS, 4 for VAF and other fractions."""
    return 2 if label.split(" ")[0] in ("SDR", "PESQ-NB") else 4


def _cell_text(cell: Cell, digits: int = 2) -> str:
    if not math.isfinite(cell.ours):
        return cell.status
    text = _fmt(cell.ours, digits)
    if cell.ci is not None:
        text += f" [{_fmt(cell.ci.lo, digits)}, {_fmt(cell.ci.hi, digits)}]"
    else:
        text += " [no interval]"
    return text if cell.status == "ok" else f"{text} ({cell.status})"


def _difference_text(row: StudyRow, digits: int) -> str:
    if row.is_reference:
        return "reference"
    d = row.difference
    if d is None:
        return ""
    if not math.isfinite(d.estimate):
        return d.status
    text = f"{d.estimate:+.{digits}f}"
    if d.ci is not None:
        text += f" [{d.ci.lo:+.{digits}f}, {d.ci.hi:+.{digits}f}]"
        text += "" if d.ci.excludes_zero else " (tie)"
    return text if d.status == "ok" else f"{text} ({d.status})"


def _column(label: str, snr: str) -> str:
    """A cell key's column name: ``SDR -5``, ``PESQ-NB`` (one row only), ``held-out VAF, NNLS``."""
    if snr == ALL or (label in STUDY_METRICS and len(STUDY_METRICS[label][1]) == 1):
        return label
    return f"{label} {snr}"


def _extra_text(row: StudyRow, extra: str) -> str:
    mean, top = row.extras.get(extra, math.nan), row.extras_max.get(extra, math.nan)
    n_finished = sum(j.status == "ok" for j in row.jobs)
    if n_finished > 1 and math.isfinite(top) and not math.isclose(mean, top):
        return f"{_fmt(mean, 4)} (max {_fmt(top, 4)})"
    return _fmt(mean, 4)


def render_study_markdown(rows: Sequence[StudyRow], title: str, notes: Sequence[str] = ()) -> str:
    """A Markdown table: one line per split and value combination, each metric cell with its 95% interval, the
    paired difference against the reference row (when there is one), the extras and the wall time; the title
    names the split(s) the rows were scored on, and the row of the current default is marked."""
    keys = list(rows[0].values) if rows else []
    extras = list(rows[0].extras) if rows else []
    cell_keys = list(rows[0].cells) if rows else []
    synergy = any(snr == ALL for _, snr in cell_keys)
    difference = next((r.difference_label for r in rows if r.difference_label), "")
    marked = any(r.is_default for r in rows)
    header = ["scored on", *keys]
    if marked:
        header.append("current default")
    header += [_column(label, snr) for label, snr in cell_keys]
    if synergy:
        header.append("neg. mass, max over movements")
    if difference:
        header.append(f"paired diff. {difference} vs reference [95%]")
    header += [*extras, "wall time (s)", "jobs"]
    splits = sorted({row.eval_split for row in rows})
    out = io.StringIO()
    if synergy:
        out.write(f"# {title} [held-out training repetitions: {'; '.join(splits) or 'none'}]\n\n")
        out.write(
            "- Scored on: HELD-OUT TRAINING REPETITIONS (the jobs' data.test_repetitions; never the test "
            "repetitions Figure 2 reports)\n"
        )
    else:
        out.write(f"# {title} [{', '.join(splits) or 'no'} split]\n\n")
        for split in splits:
            out.write(f"- {split_line(split)}\n")
    for note in notes:
        out.write(f"- {note}\n")
    if synergy:
        out.write(
            "- Cells: mean over subjects x movements, then seeds [95% interval over movements and seeds: "
            "vaenmf.report.uncertainty]; VAF uncentred, overall.\n"
        )
    else:
        out.write(
            "- Cells: mean over noises, then seeds [95% interval over utterances and seeds, as in the paper's "
            "tables: see vaenmf.report.uncertainty].\n"
        )
    if difference:
        out.write(
            "- Paired difference: this row minus the reference row on the same "
            + ("(seed, subject, movement)" if synergy else "mixtures (seed, noise, SNR, utterance)")
            + ", mean [95% interval]; (tie): the interval includes 0.\n"
        )
    out.write("\n| " + " | ".join(header) + " |\n|" + "|".join(["---"] * len(header)) + "|\n")
    for row in rows:
        cells = [_cell_text(row.cells[(label, snr)], _digits(label)) for label, snr in cell_keys]
        ok = sum(j.status == "ok" for j in row.jobs)
        line = [row.eval_split, *(str(row.values[k]) for k in keys)]
        if marked:
            line.append("yes" if row.is_default else "")
        line += cells
        if synergy:
            line.append(_fmt(row.extras_max.get("neg_mass", math.nan), 4))
        if difference:
            line.append(_difference_text(row, _digits(difference)))
        line += [*(_extra_text(row, e) for e in extras), _fmt(row.wall_time_s, 0), f"{ok}/{len(row.jobs)} ok"]
        out.write("| " + " | ".join(line) + " |\n")
    problems = [j for row in rows for j in row.jobs if j.status != "ok"]
    if problems:
        out.write("\n## Failed or missing jobs\n\n")
        out.write("".join(f"- [{j.status}] {j.path}: {j.error}\n" for j in problems))
    return out.getvalue()


def _interval_record(ci: Any) -> dict[str, Any]:
    return {"lo": None if ci is None else ci.lo, "hi": None if ci is None else ci.hi}


def _row_record(row: StudyRow) -> dict[str, Any]:
    record = {
        "values": row.values,
        "eval_split": row.eval_split,
        "status": row.status,
        "cells": {
            f"{label}/{snr}": {
                "mean": c.ours,
                **_interval_record(c.ci),
                "std": c.std,
                "n_seeds": c.n_seeds,
                "status": c.status,
            }
            for (label, snr), c in row.cells.items()
        },
        "extras": row.extras,
        "extras_max": row.extras_max,
        "wall_time_s": row.wall_time_s,
        "jobs": [str(j.path) for j in row.jobs],
        "n_jobs_ok": sum(j.status == "ok" for j in row.jobs),
        "is_reference": row.is_reference,
        "is_default": row.is_default,
    }
    if row.difference is not None:
        record["difference"] = {
            "label": row.difference_label,
            "mean": row.difference.estimate,
            **_interval_record(row.difference.ci),
            "n_seeds": row.difference.n_seeds,
            "status": row.difference.status,
            "note": row.difference.note,
        }
    return record


def write_study_report(
    jobs: Sequence[Job],
    keys: Sequence[str],
    out_dir: str | os.PathLike[str],
    title: str,
    extras: Sequence[str] = (),
    notes: Sequence[str] = (),
    require_split: str | None = None,
    reference: Mapping[str, Any] | None = None,
    heldout_forbidden: Sequence[int] | None = None,
    default: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write ``table.md`` and ``table.json`` of a study into ``out_dir``; returns the files written.

    Args:
        jobs, keys, extras, reference, default: As for :func:`study_rows`.
        out_dir: Created if needed.
        title: The table's title (the split is appended).
        notes: Lines written under the title.
        require_split: When given, refuse the table if any job was scored on another split (DataError; nothing is
            written).
        heldout_forbidden: When given, a synergy study (:func:`synergy_study_rows`) whose jobs may not have
            fitted on or scored these repetitions (DataError otherwise; nothing is written); ``extras`` are then
            not used.
        meta: More keys for ``table.json`` (``scripts/study.py``: the command and the number of jobs expected).
    """
    if heldout_forbidden is not None:
        rows = synergy_study_rows(jobs, keys, heldout_forbidden, reference, default)
    else:
        rows = study_rows(jobs, keys, extras, require_split, reference, default)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows_record = [_row_record(r) for r in rows]
    record = {
        "title": title,
        "task": "synergy" if heldout_forbidden is not None else "speech",
        "keys": list(keys),
        "eval_splits": sorted({r.eval_split for r in rows}),
        "reference": dict(reference) if reference else None,
        "default": dict(default) if default else None,
        "notes": list(notes),
        **dict(meta or {}),
        "n_jobs_ok": sum(r["n_jobs_ok"] for r in rows_record),
        "rows": rows_record,
    }
    md = write_text_atomic(out / "table.md", render_study_markdown(rows, title, notes))
    js = write_text_atomic(
        out / "table.json", json.dumps(record, indent=2, default=str, allow_nan=True) + "\n"
    )
    return [md, js]
