"""Rendering of aggregated speech tables: Markdown, CSV (long format) and LaTeX (booktabs).

Every cell shows ours (mean over seeds) with its 95% interval over utterances and seeds
(:mod:`vaenmf.report.uncertainty`), the paper's value and the difference; cells that are not ``ok`` say why
(partial, failed, missing, not run, n/a). Every title and CSV row names the split the jobs were scored on; a
validation table says so in its title. The paired-difference table (:mod:`vaenmf.report.paired`) is rendered
here too.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from vaenmf.data.shortfalls import SHORT_PREFIX
from vaenmf.report.aggregate import ABLATION_METRICS, AblationTable, Cell, SpeechTable, split_line
from vaenmf.report.jobs import Job
from vaenmf.report.paired import REFERENCE, Difference, DifferenceTable
from vaenmf.report.paper import PAPER_COLUMNS, PAPER_METRICS, PAPER_ROWS, TABLE_TITLES
from vaenmf.report.uncertainty import Interval

__all__ = [
    "render_markdown",
    "render_csv",
    "render_latex",
    "render_ablation_markdown",
    "render_ablation_csv",
    "render_differences_markdown",
    "render_differences_csv",
    "table_title",
    "INTERVAL_NOTE",
]

METRIC_LABELS: dict[str, str] = {"sdr": "SDR", "sir": "SIR", "sar": "SAR", "pesq": "PESQ"}
METRIC_UNITS: dict[str, str] = {"sdr": "dB", "sir": "dB", "sar": "dB", "pesq": "raw narrow-band MOS"}

#: How every interval of the report is made, for the notes under the tables.
INTERVAL_NOTE = (
    "[lo, hi]: 95% interval over utterances and seeds. Per seed, each test utterance contributes the mean of its "
    "scores over the cell's noise types (and over the four SNRs in Aver); with one seed the interval is the "
    "Student t-interval of the mean over utterances; with several, SE^2 = var(seed means)/S + mean over seeds of "
    "var(utterances)/n, with Welch-Satterthwaite degrees of freedom (conservative; see "
    "vaenmf.report.uncertainty). Pointwise intervals, not adjusted for the number of comparisons."
)


def table_title(table: str, eval_split: str) -> str:
    """The title of a table, naming its split (a validation table says it is not the test set)."""
    if eval_split == "validation":
        return f"{TABLE_TITLES[table]} [VALIDATION split, not the test set]"
    return f"{TABLE_TITLES[table]} [test split]"


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _ci_text(ci: Interval | None, signed: bool = False) -> str:
    return "" if ci is None else f"[{_fmt(ci.lo, signed)}, {_fmt(ci.hi, signed)}]"


def _tex_ci(ci: Interval | None) -> str:
    """``[lo, hi]`` with the numbers in math mode (a minus sign, not a hyphen); ``[--]`` without an interval."""
    return "[--]" if ci is None else f"[${_fmt(ci.lo)}$, ${_fmt(ci.hi)}$]"


def _ours_text(cell: Cell) -> str:
    if not math.isfinite(cell.ours):
        return cell.status
    text = _fmt(cell.ours)
    text += f" {_ci_text(cell.ci)}" if cell.ci is not None else " [no interval]"
    if cell.status != "ok":
        text += f" ({cell.status})"
    return text


def _md_cell(cell: Cell) -> str:
    ours = _ours_text(cell)
    if cell.paper is None:
        return ours
    if cell.diff is None:
        return f"{ours} (paper {_fmt(cell.paper)})"
    return f"{ours} (paper {_fmt(cell.paper)}, {_fmt(cell.diff, signed=True)})"


def _column_notes(
    cells: Mapping[tuple[Any, str, str], Any], rows: Sequence[Any], labels: Mapping[str, str] | None = None
) -> list[str]:
    """One line per column (or row) with every distinct note of its cells (``note`` and ``ci_note``)."""
    notes: dict[Any, list[str]] = defaultdict(list)
    for (col, _row, _metric), cell in cells.items():
        for note in (cell.note, getattr(cell, "ci_note", "")):
            if note and note not in notes[col]:
                notes[col].append(note)
    return [f"{_label(col, labels)}: {'; '.join(notes[col])}" for col in rows if notes.get(col)]


def _label(col: Any, labels: Mapping[str, str] | None = None) -> str:
    if labels and labels.get(col):
        return f"{col} ({labels[col]})"
    return str(col)


def _job_lines(jobs: Sequence[Job]) -> list[str]:
    return [f"{j.describe()} [{j.status}] {j.path}: {j.error}" for j in jobs if j.status != "ok"]


def render_markdown(result: SpeechTable) -> str:
    """The table in Markdown: each cell ``ours [lo, hi] (paper P, +diff)``, then notes and failed jobs."""
    out = io.StringIO()
    out.write(f"# {table_title(result.table, result.eval_split)}\n\n")
    for line in result.header:
        out.write(f"- {line}\n")
    out.write(
        "- Cells: ours (mean over seeds) [95% interval] (paper value, ours - paper). PESQ is raw narrow-band "
        "P.862 MOS. Marks: (partial) = some seeds incomplete; failed / missing / not implemented / not run = no "
        "value; [no interval] = the jobs record no per-utterance rows.\n"
    )
    out.write(f"- {INTERVAL_NOTE}\n\n")
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


CSV_FIELDS = (
    "table",
    "eval_split",
    "snr",
    "column",
    "metric",
    "ours",
    "lo",
    "hi",
    "paper",
    "diff",
    "n_seeds",
    "n_utterances",
    "status",
    "std",
    "se",
    "df",
    "note",
    "ci_note",
)


def _num(value: float | None) -> str:
    """Full precision for CSV, rounded to 10 decimals to drop float noise (2.0 - 1.98 = 0.020000000000000018)."""
    return "" if value is None or not math.isfinite(value) else repr(round(float(value), 10))


def _ci_fields(ci: Interval | None) -> tuple[str, str, str, str, str]:
    """``lo, hi, se, df, n_utterances`` of an interval, empty fields when there is none."""
    if ci is None:
        return "", "", "", "", ""
    df = "inf" if not math.isfinite(ci.df) else _num(ci.df)
    return _num(ci.lo), _num(ci.hi), _num(ci.se), df, str(ci.n_utterances)


def render_csv(result: SpeechTable) -> str:
    """Long-format CSV, one line per cell (:data:`CSV_FIELDS`; empty fields for no value): ``lo``/``hi`` the 95%
    interval, ``se`` and ``df`` its standard error and degrees of freedom, ``n_utterances`` the utterances it
    uses summed over seeds, ``eval_split`` the split the jobs were scored on."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in PAPER_ROWS:
        for column in PAPER_COLUMNS:
            for metric in PAPER_METRICS:
                cell = result.cells[(row, column, metric)]
                lo, hi, se, df, n_utt = _ci_fields(cell.ci)
                writer.writerow(
                    [
                        result.table,
                        result.eval_split,
                        row,
                        column,
                        metric,
                        _num(cell.ours),
                        lo,
                        hi,
                        _num(cell.paper),
                        _num(cell.diff),
                        cell.n_seeds,
                        n_utt,
                        cell.status,
                        _num(cell.std),
                        se,
                        df,
                        cell.note,
                        cell.ci_note,
                    ]
                )
    return buf.getvalue()


def _tex_escape(text: str) -> str:
    for a, b in (("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("$", r"\$"), ("±", r"$\pm$")):
        text = text.replace(a, b)
    return text


def _tex_cell(cell: Cell) -> str:
    if math.isfinite(cell.ours):
        lines = [_fmt(cell.ours) + (r"$^\ast$" if cell.status != "ok" else "")]
        lines.append(r"{\scriptsize " + _tex_ci(cell.ci) + "}")
    else:
        lines = [r"\textit{" + cell.status + "}"]
    if cell.paper is not None:
        bottom = _fmt(cell.paper) + (f", ${_fmt(cell.diff, signed=True)}$" if cell.diff is not None else "")
        lines.append(r"{\scriptsize (" + bottom + ")}")
    if len(lines) == 1:
        return lines[0]
    return r"\begin{tabular}[c]{@{}c@{}}" + r"\\".join(lines) + r"\end{tabular}"


def _tex_short(header: Sequence[str]) -> str:
    """The header's shortfall line (:func:`~vaenmf.data.shortfalls.summarise_shortfalls`) for a caption, or ``""``."""
    short = next((line for line in header if line.startswith(SHORT_PREFIX)), "")
    return f" \\textbf{{{_tex_escape(short)}.}}" if short else ""


def render_latex(result: SpeechTable) -> str:
    """A booktabs LaTeX table (needs ``booktabs`` and ``graphicx``); each cell: ours over [lo, hi] over (paper,
    diff)."""
    out = io.StringIO()
    out.write("% Generated by vaenmf-report. Needs \\usepackage{booktabs,graphicx}.\n")
    for line in result.header:
        out.write(f"% {line}\n")
    out.write("\\begin{table}[t]\n\\centering\n")
    caption = _tex_escape(table_title(result.table, result.eval_split))
    split = "validation split (not the test set)" if result.eval_split == "validation" else "test split"
    out.write(
        f"\\caption{{{caption}. Scored on the {split}. Each cell: ours, its 95\\% interval over utterances and "
        f"seeds [lo, hi] ([--]: no per-utterance rows), and (paper, ours $-$ paper); PESQ is raw narrow-band "
        f"P.862 MOS; $^\\ast$ marks cells where some seeds are incomplete. Seeds: "
        f"{_tex_escape(', '.join('?' if s is None else str(s) for s in result.seeds) or 'none')}."
        f"{_tex_short(result.header)}}}\n"
    )
    label = result.table if result.eval_split == "test" else f"{result.table}_{result.eval_split}"
    out.write(f"\\label{{tab:{label}}}\n\\resizebox{{\\textwidth}}{{!}}{{%\n")
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
    """Every method x SNR: SDR, SIR, SAR and PESQ with intervals, and the unprocessed input, one section per table
    setting and one sub-table per metric."""
    out = io.StringIO()
    splits = sorted({ab.eval_split for ab in ablations})
    which = "VALIDATION split, not the test set" if splits == ["validation"] else ", ".join(splits) + " split"
    out.write(f"# Ablation: every method, every dictionary x activation estimator [{which}]\n\n")
    out.write(
        "Mean over noises then seeds [95% interval]; PESQ is raw narrow-band MOS. `input` is the unprocessed "
        "mixture; its SAR is n/a (the mixture has no artefacts: its SAR is numerically infinite, about 150 dB, "
        "and is not averaged).\n\n"
    )
    out.write(f"{INTERVAL_NOTE}\n")
    for ab in ablations:
        out.write(f"\n## {table_title(ab.table, ab.eval_split)}\n\n- {split_line(ab.eval_split)}\n")
        for label in ABLATION_METRICS:
            out.write(f"\n### {label}\n\n")
            header = ["method (components)", *(f"{row} dB" if row != "Aver" else row for row in PAPER_ROWS)]
            out.write("| " + " | ".join(header) + " |\n|" + "|".join(["---"] * len(header)) + "|\n")
            for method in ab.rows:
                cells = [_ours_text(ab.cells[(method, row, label)]) for row in PAPER_ROWS]
                out.write(f"| {_label(method, ab.labels)} | " + " | ".join(cells) + " |\n")
        notes = _column_notes(ab.cells, ab.rows, ab.labels)
        if notes:
            out.write("\n" + "".join(f"- {n}\n" for n in notes))
    return out.getvalue()


#: The columns every long-format cell line ends with (:func:`cell_csv_values`): the value, its interval, spread
#: and counts, its status and notes.
CELL_CSV_FIELDS = ("ours", "lo", "hi", "std", "n_seeds", "n_utterances", "status", "note", "ci_note")
ABLATION_CSV_FIELDS = ("table", "eval_split", "snr", "method", "components", "metric", *CELL_CSV_FIELDS)


def cell_csv_values(cell: Cell) -> list[Any]:
    """A cell's :data:`CELL_CSV_FIELDS`, in that order."""
    lo, hi, _se, _df, n_utt = _ci_fields(cell.ci)
    return [
        _num(cell.ours),
        lo,
        hi,
        _num(cell.std),
        cell.n_seeds,
        n_utt,
        cell.status,
        cell.note,
        cell.ci_note,
    ]


def render_ablation_csv(ablations: Sequence[AblationTable]) -> str:
    """Long-format CSV of the ablation (:data:`ABLATION_CSV_FIELDS`; method ``input`` for the unprocessed
    mixture, whose SAR has status ``n/a`` and no value)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(ABLATION_CSV_FIELDS)
    for ab in ablations:
        for method in ab.rows:
            for label in ABLATION_METRICS:
                for row in PAPER_ROWS:
                    cell = ab.cells[(method, row, label)]
                    where = [ab.table, ab.eval_split, row, method, ab.labels.get(method, ""), label.lower()]
                    writer.writerow([*where, *cell_csv_values(cell)])
    return buf.getvalue()


def _difference_text(diff: Difference) -> str:
    if diff.ci is None:
        return (
            diff.status if not math.isfinite(diff.estimate) else f"{_fmt(diff.estimate, True)} [no interval]"
        )
    text = f"{_fmt(diff.estimate, signed=True)} {_ci_text(diff.ci, signed=True)} {diff.verdict}"
    return text if diff.status == "ok" else f"{text} ({diff.status})"


def render_differences_markdown(tables: Sequence[DifferenceTable]) -> str:
    """Per table setting and metric: VAE-NMF minus each other column and ablation row, per SNR and on average."""
    out = io.StringIO()
    splits = sorted({t.eval_split for t in tables})
    which = "VALIDATION split, not the test set" if splits == ["validation"] else ", ".join(splits) + " split"
    ref = tables[0].reference if tables else REFERENCE
    out.write(f"# Paired differences: {ref} minus each other column and ablation row [{which}]\n\n")
    out.write(
        f"- Each cell: mean of {ref}'s score minus the other's on the same mixtures, paired by (seed, noise, "
        "SNR, utterance) [95% interval], then whether the interval excludes zero: `higher` / `lower` = "
        f"{ref} scores higher / lower on these utterances and seeds; `undecided` = the interval includes "
        "0, these data cannot order the two. Higher is better for every metric.\n"
    )
    out.write(f"- {INTERVAL_NOTE}\n")
    out.write(
        f"- `input`: the unprocessed mixture ({ref}'s improvement over it); its SAR is n/a (numerically "
        "infinite).\n"
    )
    for t in tables:
        out.write(f"\n## {table_title(t.table, t.eval_split)}\n\n- {split_line(t.eval_split)}\n")
        seeds = ", ".join("?" if s is None else str(s) for s in t.seeds) or "none"
        out.write(f"- Seeds: {seeds}; {t.n_comparisons} intervals in this section.\n")
        for metric in PAPER_METRICS:
            out.write(f"\n### {METRIC_LABELS[metric]} ({METRIC_UNITS[metric]})\n\n")
            header = [f"{t.reference} minus", *(f"{row} dB" if row != "Aver" else row for row in PAPER_ROWS)]
            out.write("| " + " | ".join(header) + " |\n|" + "|".join(["---"] * len(header)) + "|\n")
            for other in t.others:
                cells = [_difference_text(t.cells[(other, row, metric)]) for row in PAPER_ROWS]
                out.write(f"| {_label(other, t.labels)} | " + " | ".join(cells) + " |\n")
        notes = _column_notes(t.cells, t.others, t.labels)
        if notes:
            out.write("\n" + "".join(f"- {n}\n" for n in notes))
    return out.getvalue()


DIFFERENCE_CSV_FIELDS = (
    "table",
    "eval_split",
    "snr",
    "metric",
    "reference",
    "other",
    "components",
    "estimate",
    "lo",
    "hi",
    "se",
    "df",
    "n_seeds",
    "n_utterances",
    "excludes_zero",
    "verdict",
    "status",
    "note",
)


def render_differences_csv(tables: Sequence[DifferenceTable]) -> str:
    """Long-format CSV of the paired differences (:data:`DIFFERENCE_CSV_FIELDS`); ``excludes_zero`` is
    ``true``/``false`` (empty without an interval), ``verdict`` ``higher``/``lower``/``undecided``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(DIFFERENCE_CSV_FIELDS)
    for t in tables:
        for other in t.others:
            for metric in PAPER_METRICS:
                for row in PAPER_ROWS:
                    diff = t.cells[(other, row, metric)]
                    lo, hi, se, df, n_utt = _ci_fields(diff.ci)
                    excludes = "" if diff.ci is None else str(diff.ci.excludes_zero).lower()
                    writer.writerow(
                        [
                            t.table,
                            t.eval_split,
                            row,
                            metric,
                            t.reference,
                            other,
                            t.labels.get(other, ""),
                            _num(diff.estimate),
                            lo,
                            hi,
                            se,
                            df,
                            diff.n_seeds,
                            n_utt,
                            excludes,
                            diff.verdict,
                            diff.status,
                            diff.note,
                        ]
                    )
    return buf.getvalue()
