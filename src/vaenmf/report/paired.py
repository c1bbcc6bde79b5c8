"""Paired differences: VAE-NMF minus every other column and ablation row, on the same mixtures.

For one table setting and split, each comparison ``VAE-NMF - X`` pairs the two methods' scores of the same test
mixture, (seed, job noise, row noise kind, SNR, utterance), takes per utterance the mean of the differences over
the cell's slots (both noise types in Table 1, the pooled job's two kinds in Table 2, and the four SNRs in the
"Aver" row), and gives the mean over utterances and seeds with its 95% interval
(:mod:`vaenmf.report.uncertainty`). ``X`` is each other paper column (NMF, DNMF, DNN), each ablation row (a
method that fills no paper column, e.g. ``nmf_dnn``, ``vae_nmf_mu``) and the unprocessed input (VAE-NMF's own
``*_input`` scores: the same mixtures, unprocessed; its SAR is not applicable). Only seeds where both sides
finished every noise are used; a comparison that leaves some seeds out is ``partial``.

Higher is better for every metric (SDR, SIR, SAR in dB, PESQ as MOS), so an interval above zero says VAE-NMF
scores higher, one below zero that it scores lower, and one that includes zero that these utterances and seeds
cannot tell the two apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vaenmf.errors import ConfigError
from vaenmf.report.aggregate import (
    INPUT_ROW,
    METRIC_KEYS,
    NOT_APPLICABLE,
    method_label,
    seed_sort_key,
    table_jobs,
)
from vaenmf.report.grid import TABLE_NOISES, matches
from vaenmf.report.jobs import DEFAULT_EVAL_SPLIT, Job
from vaenmf.report.paper import PAPER_COLUMNS, PAPER_METRICS, PAPER_ROWS, PAPER_SNRS
from vaenmf.report.uncertainty import Interval, interval, job_slots, paired_slots, unit_values

__all__ = ["REFERENCE", "Difference", "DifferenceTable", "build_differences"]

#: The column every other one is compared with.
REFERENCE = "VAE-NMF"


@dataclass
class Difference:
    """One paired difference ``VAE-NMF - X`` at one SNR row and metric.

    Attributes:
        estimate: Mean over seeds of the mean over utterances of the paired differences (NaN when none).
        ci: Its 95% interval (None when there is no estimate, or fewer than two utterances).
        n_seeds: Seeds used.
        status: ``ok``, ``partial`` (some seeds left out), ``missing`` (no seed where both finished), ``no rows``
            (the jobs record no per-utterance rows) or ``n/a``.
        note: Why a cell is not ``ok``.
    """

    estimate: float
    ci: Interval | None
    n_seeds: int
    status: str
    note: str = ""

    @property
    def verdict(self) -> str:
        """``higher`` or ``lower`` (VAE-NMF's score, when the interval excludes zero), ``undecided``, or ""."""
        if self.ci is None:
            return ""
        if not self.ci.excludes_zero:
            return "undecided"
        return "higher" if self.ci.lo > 0 else "lower"


@dataclass
class DifferenceTable:
    """Every paired difference of one table setting and split.

    Attributes:
        table: ``"table1"`` or ``"table2"``.
        eval_split: The split of every job used.
        others: What VAE-NMF is compared with: paper columns, then ablation methods, then :data:`INPUT_ROW`.
        labels: ``other`` -> what it composes (ablation methods) or ``"unprocessed mixture"``.
        cells: ``(other, snr_row, metric) -> Difference``, metrics :data:`PAPER_METRICS`.
        seeds: Every seed of the table's jobs.
        reference: The column every other one is compared with (:data:`REFERENCE` in the report).
    """

    table: str
    eval_split: str
    others: list[str]
    labels: dict[str, str]
    cells: dict[tuple[str, str, str], Difference]
    seeds: list[int | None] = field(default_factory=list)
    reference: str = REFERENCE

    @property
    def n_comparisons(self) -> int:
        """Intervals in the table (what a multiplicity correction would divide by)."""
        return sum(c.ci is not None for c in self.cells.values())


def _complete(jobs: Sequence[Job], noises: Sequence[str], seed: int | None) -> list[Job] | None:
    """One finished job per noise of ``seed``, or None when a noise has none."""
    chosen = []
    for noise in noises:
        ok = [j for j in jobs if j.noise == noise and j.seed == seed and j.status == "ok"]
        if not ok:
            return None
        chosen.append(ok[0])
    return chosen


def _difference(
    ref: dict[int | None, list[Job]],
    other: dict[int | None, list[Job]],
    seeds: Sequence[int | None],
    snrs: Sequence[str],
    key_ref: str,
    key_other: str,
) -> Difference:
    if key_other in NOT_APPLICABLE:
        return Difference(math.nan, None, 0, "n/a", NOT_APPLICABLE[key_other])
    groups: list[list[float]] = []
    dropped = 0
    left_out = []
    for seed in seeds:
        if seed not in ref or seed not in other:
            left_out.append("?" if seed is None else str(seed))
            continue
        a, why_a = job_slots(ref[seed], snrs, key_ref)
        b, why_b = job_slots(other[seed], snrs, key_other)
        if a is None or b is None:
            return Difference(math.nan, None, 0, "no rows", why_a or why_b)
        values, n_dropped = unit_values(paired_slots(a, b))
        dropped += n_dropped
        groups.append(values)
    note = f"seeds left out (a side did not finish every noise): {', '.join(left_out)}" if left_out else ""
    if not groups:
        return Difference(math.nan, None, 0, "missing", note or "no seed where both finished")
    if not all(groups):
        return Difference(math.nan, None, 0, "missing", "no mixture scored by both")
    ci, why = interval(groups, n_dropped=dropped)
    estimate = float(np.mean([np.mean(g) for g in groups]))
    if dropped:
        note = "; ".join(filter(None, [note, f"{dropped} utterance(s) without a finite pair left out"]))
    if why:
        note = "; ".join(filter(None, [note, why]))
    return Difference(estimate, ci, len(groups), "partial" if left_out else "ok", note)


def build_differences(
    jobs: Sequence[Job], table: str, eval_split: str = DEFAULT_EVAL_SPLIT, reference: str = REFERENCE
) -> DifferenceTable:
    """The paired differences of one table setting, from the jobs scored on ``eval_split``.

    Args:
        jobs: All jobs (other tables, tasks and splits are ignored).
        table: ``"table1"`` or ``"table2"``.
        eval_split: ``test`` or ``validation``.
        reference: The paper column compared with every other one (the report uses VAE-NMF; another column
            gives, e.g., DNMF minus NMF).

    Raises:
        ConfigError: If ``reference`` is not a paper column.
    """
    if reference not in PAPER_COLUMNS:
        raise ConfigError(
            f"reference {reference!r} is not a paper column; expected one of {', '.join(PAPER_COLUMNS)}"
        )
    tjobs = table_jobs(jobs, table, eval_split)
    noises = TABLE_NOISES[table]
    seeds = sorted({j.seed for j in tjobs}, key=seed_sort_key)

    def by_seed(selected: Sequence[Job]) -> dict[int | None, list[Job]]:
        out = {}
        for seed in seeds:
            complete = _complete(selected, noises, seed)
            if complete is not None:
                out[seed] = complete
        return out

    ref = by_seed([j for j in tjobs if matches(j, reference)])
    ablations = sorted({j.method for j in tjobs if j.method and j.paper_column is None})
    others = [c for c in PAPER_COLUMNS if c != reference] + ablations + [INPUT_ROW]
    labels = {m: method_label(tjobs, m) for m in ablations}
    labels[INPUT_ROW] = "unprocessed mixture"
    cells: dict[tuple[str, str, str], Difference] = {}
    for other in others:
        if other == INPUT_ROW:
            side = ref
        elif other in PAPER_COLUMNS:
            side = by_seed([j for j in tjobs if matches(j, other)])
        else:
            side = by_seed([j for j in tjobs if j.method == other])
        for row in PAPER_ROWS:
            snrs = PAPER_SNRS if row == "Aver" else (row,)
            for metric in PAPER_METRICS:
                key = METRIC_KEYS[metric]
                key_other = f"{key}_input" if other == INPUT_ROW else key
                if not ref:
                    cells[(other, row, metric)] = Difference(
                        math.nan, None, 0, "missing", f"no {reference} job finished every noise"
                    )
                    continue
                cells[(other, row, metric)] = _difference(ref, side, seeds, snrs, key, key_other)
    return DifferenceTable(
        table=table,
        eval_split=eval_split,
        others=others,
        labels=labels,
        cells=cells,
        seeds=seeds,
        reference=reference,
    )
