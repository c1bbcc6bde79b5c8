"""``vaenmf-report``: turn sweep directories into the paper's tables and Figure 2.

Usage::

    vaenmf-report SWEEP_DIR [SWEEP_DIR ...] --out OUT_DIR [--tables table1,table2]
                  [--expect NMF,DNN,vae_nmf_mu,nmf_dnn:factory,...]

Writes ``table1.{md,csv,tex}``, ``table2.{md,csv,tex}``, ``ablation.{md,csv}`` and ``differences.{md,csv}`` (the
paired differences VAE-NMF minus each other column, with 95% intervals; see :mod:`vaenmf.report.speech`) for
speech jobs scored on the test split, the same files with a ``_validation`` suffix for jobs scored on the
validation split (the two are never mixed), ``conditions.{md,csv}`` for the speech jobs of noise conditions outside
the paper's tables (other NOISEX-92 noises, pools, noise files, mismatched-noise jobs; :mod:`vaenmf.report.conditions`),
``vaf.csv``, ``fig2_vaf.{md,png,pdf}`` and
``fig2_vaf_summary.{png,pdf}`` (see :mod:`vaenmf.report.synergy`) for muscle-synergy jobs, and prints the path of
every file written. When the jobs were logged to W&B (detected: a job folder holds ``wandb_run.json``;
``--wandb`` / ``--no-wandb`` force it either way), a summary run in the jobs' group (``--wandb-group`` to choose)
holds every table written as a ``wandb.Table`` and every figure (:func:`vaenmf.tracking.log_report_run`), and
the ``wandb sync`` command of the offline runs is printed. Failed or missing jobs are shown in the
tables, and problems with individual files are printed as warnings; a directory that does not exist or holds no
``metrics.json`` at all, or a bad option, prints one error line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from vaenmf.errors import VaenmfError
from vaenmf.report.conditions import other_conditions
from vaenmf.report.grid import TABLE_NOISES, parse_expect
from vaenmf.report.jobs import EVAL_SPLITS, ReportWarning, load_jobs
from vaenmf.report.speech import speech_tables_present, write_speech_report
from vaenmf.report.synergy import synergy_jobs, write_synergy_report

PROG = "vaenmf-report"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Aggregate vaenmf sweep results (metrics.json per job) into the paper's Tables 1 and 2 "
        "(Markdown, CSV, LaTeX) with 95% intervals, the published values and differences, an ablation table, a "
        "paired-difference table (VAE-NMF minus each other column), and the muscle-synergy Figure 2 (vaf.csv, "
        "fig2_vaf.png/pdf/md). Jobs scored on the validation split get their own files (*_validation.*).",
    )
    parser.add_argument(
        "sweep_dirs", nargs="+", metavar="SWEEP_DIR", help="sweep or job directories (searched recursively)"
    )
    parser.add_argument("--out", required=True, metavar="OUT_DIR", help="folder to write the tables to")
    parser.add_argument(
        "--tables",
        default=None,
        help=f"comma-separated tables to write ({', '.join(TABLE_NOISES)}); default: those with any job",
    )
    parser.add_argument(
        "--expect",
        default=None,
        metavar="GRID",
        help="comma-separated expected jobs KEY[:NOISE], KEY a paper column (NMF, DNMF, DNN, VAE-NMF) or a method "
        "name (e.g. vae_nmf_mu); expected jobs without a result are marked missing. Default: the paper's four "
        "columns in every table",
    )
    parser.add_argument(
        "--wandb",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log a W&B summary run holding the report's tables and figures, in the jobs' group (default: when "
        "the jobs were logged to W&B, i.e. a job folder holds wandb_run.json); offline unless the jobs ran online",
    )
    parser.add_argument(
        "--wandb-group",
        default=None,
        metavar="GROUP",
        help="the summary run's W&B group (default: the jobs' group, when they share one)",
    )
    return parser


def _summary_run(args: argparse.Namespace, jobs: Sequence, written: Sequence) -> int:
    """Log the W&B summary run when asked or detected (see the module docstring); returns 0, or 1 when it was
    asked for with ``--wandb`` and failed."""
    from vaenmf.tracking import log_report_run, sync_command

    try:
        run = log_report_run(
            [j.path for j in jobs],
            written,
            args.out,
            force=args.wandb,
            group=args.wandb_group,
            sweeps=args.sweep_dirs,
        )
    except Exception as err:
        level = "error" if args.wandb else "warning"
        print(
            f"{PROG}: {level}: the W&B summary run was not logged: {type(err).__name__}: {err}",
            file=sys.stderr,
        )
        return 1 if args.wandb else 0
    if run is None:
        return 0
    where = f"saved offline in {run.folder}" if run.folder else f"logged {run.mode}"
    print(f"{PROG}: W&B summary run (group {run.group}: {run.note}; {len(run.tables)} tables, "
          f"{len(run.images)} figures) {where}")  # fmt: skip
    if run.sync_folders:
        print(f"{PROG}: upload the jobs' runs and the summary run with: {sync_command(run.sync_folders)}")
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, ReportWarning):
        print(f"{PROG}: warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vaenmf-report``; returns the exit status (0 ok, 2 bad input)."""
    args = _parser().parse_args(argv)
    tables = None
    if args.tables is not None:
        tables = [t.strip() for t in args.tables.split(",") if t.strip()]
        unknown = [t for t in tables if t not in TABLE_NOISES]
        if unknown or not tables:
            print(
                f"{PROG}: error: --tables {args.tables!r}: expected a comma-separated subset of "
                f"{', '.join(TABLE_NOISES)}",
                file=sys.stderr,
            )
            return 2
    try:
        with warnings.catch_warnings():  # restores warnings.showwarning on exit
            warnings.simplefilter("always", ReportWarning)
            warnings.showwarning = _show_warning
            expect = parse_expect(args.expect, tables) if args.expect is not None else None
            jobs = load_jobs(args.sweep_dirs)
            written = []
            has_synergy = bool(synergy_jobs(jobs))
            other_speech = any(other_conditions(jobs, split) for split in EVAL_SPLITS)
            # Speech tables when there is a speech job, or when asked for explicitly; otherwise only the
            # synergy report (a Figure 2 sweep alone is a complete report, not an error).
            if speech_tables_present(jobs) or other_speech or tables or expect or not has_synergy:
                written += write_speech_report(jobs, args.out, tables=tables, expect=expect)
            if has_synergy:
                written += write_synergy_report(jobs, args.out)
    except VaenmfError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"{PROG}: error: cannot write the report to {args.out}: {err}", file=sys.stderr)
        return 2
    n_bad = sum(j.status != "ok" for j in jobs)
    print(f"{PROG}: read {len(jobs)} job(s) ({n_bad} failed or missing) from {', '.join(args.sweep_dirs)}")
    for path in written:
        print(f"wrote {path}")
    return _summary_run(args, jobs, written)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
