"""The report of noise conditions beyond the paper's tables: ``conditions.{md,csv}``.

Tables 1 and 2 hold the paper's conditions (factory and babble, each trained and tested on itself; pooled). Every
other condition a speech job ran (:mod:`vaenmf.data.noises`: another NOISEX-92 noise such as ``white``, a pool
such as ``pooled:white+pink``, a noise file by path, and every mismatched-noise job, trained on ``noise`` and
tested on ``test_noise``) gets a section of its own here, labelled with what it was trained and tested on: per
method (and the unprocessed input), SDR, SIR, SAR and PESQ per SNR and on average, each with its 95% interval
over utterances and seeds, aggregated exactly like the ablation table's cells
(:func:`~vaenmf.report.aggregate.aggregate_cell`). Each section's heading has the provenance lines of the paper's
tables (split, corpus, what the data fell short of, seeds, commits). Validation and test jobs are never mixed:
validation sections go to ``conditions_validation.{md,csv}``.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vaenmf.report.aggregate import (
    ABLATION_METRICS,
    INPUT_ROW,
    Cell,
    _header,
    aggregate_cell,
    method_label,
    seed_sort_key,
)
from vaenmf.report.grid import is_speech, table_of
from vaenmf.report.jobs import Job, dedupe
from vaenmf.report.paper import PAPER_ROWS
from vaenmf.report.render import CELL_CSV_FIELDS, INTERVAL_NOTE, _label, _ours_text, cell_csv_values

__all__ = ["ConditionTable", "other_conditions", "build_conditions", "render_conditions_markdown",
           "render_conditions_csv"]  # fmt: skip


@dataclass
class ConditionTable:
    """Every method of one noise condition outside the paper's tables.

    Attributes:
        condition: The job's condition label (``white``, ``pooled:white+pink``, ``factory -> babble``).
        corpus: The speech corpus, when the condition was run on several (one section each); else None.
        noise: What the dictionaries and networks were trained on.
        test_noise: What the evaluation mixtures used (the same as ``noise`` unless mismatched).
        eval_split: The split every job was scored on.
        rows: Method names, then :data:`~vaenmf.report.aggregate.INPUT_ROW`.
        labels: Row -> what the method composes.
        cells: ``(row, snr_row, metric_label) -> Cell``.
        header: Provenance lines (as the paper tables': split, corpus, shortfalls, seeds, commits, jobs).
        jobs: The condition's jobs (one per method and seed).
    """

    condition: str
    corpus: str | None
    noise: str
    test_noise: str
    eval_split: str
    rows: list[str]
    labels: dict[str, str]
    cells: dict[tuple[str, str, str], Cell]
    header: list[str]
    jobs: list[Job]

    @property
    def title(self) -> str:
        """``white`` or ``trained on factory, tested on babble (mismatched noise)``."""
        on = f" on the {self.corpus} corpus" if self.corpus else ""
        if self.noise == self.test_noise:
            return f"noise {self.noise}{on}"
        return f"trained on {self.noise}, tested on {self.test_noise} (mismatched noise){on}"


def _other(jobs: Iterable[Job], eval_split: str) -> list[Job]:
    return [
        j
        for j in jobs
        if is_speech(j)
        and j.noise
        and table_of(j) is None
        and j.eval_split == eval_split
        and j.task != "synergy"
    ]


def other_conditions(jobs: Iterable[Job], eval_split: str) -> list[str]:
    """The condition labels of the speech jobs of ``eval_split`` outside the paper's tables, sorted."""
    return sorted({str(j.condition) for j in _other(jobs, eval_split)})


def build_conditions(jobs: Sequence[Job], eval_split: str) -> list[ConditionTable]:
    """One :class:`ConditionTable` per condition outside the paper's tables (see the module docstring).

    Args:
        jobs: All jobs; those of the paper's tables, of other tasks and of another split are ignored.
        eval_split: ``test`` or ``validation``.
    """
    out = []
    # One section per condition and corpus: the same condition on two corpora (a noise file with the demo speech
    # and with a folder corpus) is two experiments, not duplicates.
    grouped: dict[tuple[str, str], list[Job]] = defaultdict(list)
    for job in _other(jobs, eval_split):
        grouped[(str(job.condition), str(job.corpus or "unknown"))].append(job)
    corpora: dict[str, int] = defaultdict(int)
    for condition, _ in grouped:
        corpora[condition] += 1
    for condition, corpus in sorted(grouped):
        cjobs = dedupe(grouped[(condition, corpus)])
        seeds = sorted({j.seed for j in cjobs}, key=seed_sort_key)
        methods = sorted({j.method for j in cjobs if j.method})
        rows = [*methods, INPUT_ROW]
        cells: dict[tuple[str, str, str], Cell] = {}
        for method in rows:
            if method == INPUT_ROW:
                chosen = [j for j in cjobs if j.status == "ok"]
            else:
                chosen = [j for j in cjobs if j.method == method]
            jobs_at: dict[tuple[str, int | None], list[Job]] = defaultdict(list)
            for j in chosen:
                jobs_at[(condition, j.seed)].append(j)
            for row in PAPER_ROWS:
                for label, (key, input_key) in ABLATION_METRICS.items():
                    k = input_key if method == INPUT_ROW else key
                    cells[(method, row, label)] = aggregate_cell(jobs_at, (condition,), seeds, row, k, True)
        labels = {m: method_label(cjobs, m) for m in methods}
        labels[INPUT_ROW] = "unprocessed mixture"
        first = cjobs[0]
        out.append(
            ConditionTable(
                condition=condition,
                corpus=corpus if corpora[condition] > 1 else None,
                noise=str(first.noise),
                test_noise=str(first.test_noise or first.noise),
                eval_split=eval_split,
                rows=rows,
                labels=labels,
                cells=cells,
                header=_header(cjobs, seeds, eval_split),
                jobs=cjobs,
            )
        )
    return out


def render_conditions_markdown(tables: Sequence[ConditionTable]) -> str:
    """Every condition outside the paper's tables: one section per condition, one sub-table per metric."""
    out = io.StringIO()
    splits = sorted({t.eval_split for t in tables})
    which = "VALIDATION split, not the test set" if splits == ["validation"] else ", ".join(splits) + " split"
    out.write(f"# Noise conditions beyond the paper's tables [{which}]\n\n")
    out.write(
        "Conditions other than Table 1's (factory, babble) and Table 2's (pooled): other NOISEX-92 noises, pools, "
        "noise files, and mismatched-noise jobs (dictionaries and networks trained on one condition, tested on "
        "another). No paper value exists for them. Mean over seeds [95% interval]; PESQ is raw narrow-band MOS; "
        "`input` is the unprocessed mixture (its SAR is n/a).\n\n"
    )
    out.write(f"{INTERVAL_NOTE}\n")
    for t in tables:
        out.write(f"\n## {t.condition}: {t.title}\n\n")
        for line in t.header:
            out.write(f"- {line}\n")
        for label in ABLATION_METRICS:
            out.write(f"\n### {label}\n\n")
            head = ["method (components)", *(f"{row} dB" if row != "Aver" else row for row in PAPER_ROWS)]
            out.write("| " + " | ".join(head) + " |\n|" + "|".join(["---"] * len(head)) + "|\n")
            for method in t.rows:
                cells = [_ours_text(t.cells[(method, row, label)]) for row in PAPER_ROWS]
                out.write(f"| {_label(method, t.labels)} | " + " | ".join(cells) + " |\n")
        problems = [f"{j.describe()} [{j.status}] {j.path}: {j.error}" for j in t.jobs if j.status != "ok"]
        if problems:
            out.write("\nFailed or missing jobs:\n\n" + "".join(f"- {p}\n" for p in problems))
    return out.getvalue()


CONDITION_CSV_FIELDS = (
    "condition", "corpus", "noise", "test_noise", "eval_split", "snr", "method", "components", "metric",
    *CELL_CSV_FIELDS,
)  # fmt: skip


def render_conditions_csv(tables: Sequence[ConditionTable]) -> str:
    """Long-format CSV, one line per cell (:data:`CONDITION_CSV_FIELDS`; method ``input`` for the mixture; ``corpus``
    empty unless the condition was run on several corpora)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CONDITION_CSV_FIELDS)
    for t in tables:
        for method in t.rows:
            for label in ABLATION_METRICS:
                for row in PAPER_ROWS:
                    cell = t.cells[(method, row, label)]
                    where = [t.condition, t.corpus or "", t.noise, t.test_noise, t.eval_split, row, method]
                    writer.writerow([*where, t.labels.get(method, ""), label.lower(), *cell_csv_values(cell)])
    return buf.getvalue()
