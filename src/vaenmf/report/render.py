"""Rendering of aggregated speech tables: Markdown, CSV (long format) and LaTeX (booktabs).

Every cell shows ours (mean over seeds, with the spread over seeds when there are several), the paper's value and
the difference; cells that are not ``ok`` say why (partial, failed, missing, not run).
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from vaenmf.report.aggregate import ABLATION_METRICS, AblationTable, Cell, SpeechTable
from vaenmf.report.jobs import Job
from vaenmf.report.paper import PAPER_COLUMNS, PAPER_METRICS, PAPER_ROWS, TABLE_TITLES

__all__ = [
    "render_markdown",
    "render_csv",
    "render_latex",
    "render_ablation_markdown",
    "render_ablation_csv",
]

METRIC_LABELS: dict[str, str] = {"sdr": "SDR", "sir": "SIR", "sar": "SAR", "pesq": "PESQ"}


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


def _column_notes(
    cells: Mapping[tuple[Any, str, str], Cell], rows: Sequence[Any], labels: Mapping[str, str] | None = None
) -> list[str]:
    notes: dict[Any, list[str]] = defaultdict(list)
    for (col, _row, _metric), cell in cells.items():
        if cell.note and cell.note not in notes[col]:
            notes[col].append(cell.note)
    return [f"{_label(col, labels)}: {'; '.join(notes[col])}" for col in rows if notes.get(col)]


def _label(col: Any, labels: Mapping[str, str] | None = None) -> str:
    if labels and labels.get(col):
        return f"{col} ({labels[col]})"
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
    """Every method x SNR: SDR and PESQ, with the unprocessed input, one section per table setting."""
    out = io.StringIO()
    out.write("# Ablation: every method, every dictionary x activation estimator\n\n")
    out.write(
        "SDR (dB) and PESQ (raw narrow-band MOS), mean over noises then seeds (± sample std). "
        "`input` is the unprocessed mixture.\n"
    )
    for ab in ablations:
        out.write(f"\n## {TABLE_TITLES[ab.table]}\n\n")
        header = ["method (components)"] + [
            f"{label} {row}" for label in ABLATION_METRICS for row in PAPER_ROWS
        ]
        out.write("| " + " | ".join(header) + " |\n|" + "|".join(["---"] * len(header)) + "|\n")
        for method in ab.rows:
            cells = [
                _ours_text(ab.cells[(method, row, label)]) for label in ABLATION_METRICS for row in PAPER_ROWS
            ]
            out.write(f"| {_label(method, ab.labels)} | " + " | ".join(cells) + " |\n")
        notes = _column_notes(ab.cells, ab.rows, ab.labels)
        if notes:
            out.write("\n" + "".join(f"- {n}\n" for n in notes))
    return out.getvalue()


ABLATION_CSV_FIELDS = (
    "table",
    "snr",
    "method",
    "components",
    "metric",
    "ours",
    "std",
    "n_seeds",
    "status",
    "note",
)


def render_ablation_csv(ablations: Sequence[AblationTable]) -> str:
    """Long-format CSV of the ablation (method ``input`` for the unprocessed mixture)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(ABLATION_CSV_FIELDS)
    for ab in ablations:
        for method in ab.rows:
            for label in ABLATION_METRICS:
                for row in PAPER_ROWS:
                    cell = ab.cells[(method, row, label)]
                    writer.writerow(
                        [
                            ab.table,
                            row,
                            method,
                            ab.labels.get(method, ""),
                            label.lower(),
                            _num(cell.ours),
                            _num(cell.std),
                            cell.n_seeds,
                            cell.status,
                            cell.note,
                        ]
                    )
    return buf.getvalue()
