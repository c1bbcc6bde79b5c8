"""The muscle-synergy report: ``vaf.csv``, ``fig2_vaf.{png,pdf}`` (the paper's Figure 2), a VAF summary figure
and ``fig2_vaf.md``, from the ``task=synergy`` jobs of a sweep.

The paper publishes no VAF numbers, only two claims about its Figure 2, which the Markdown checks on our
results: both methods reconstruct every muscle with VAF over 90%, and VAE-NMF's VAF is below NMF's for every
muscle (the paper reads this as less overfitting).

References:
    Xie et al., sec. 3 and Figure 2.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vaenmf.atomic import save_figure_atomic, write_text_atomic
from vaenmf.data.shortfalls import summarise_shortfalls
from vaenmf.errors import DataError
from vaenmf.report.jobs import Job, ReportWarning
from vaenmf.report.uncertainty import interval

#: Methods of the figure, in drawing order, with their labels and colours.
METHODS = {"nmf": ("NMF", "tab:blue"), "vae_nmf": ("VAE-NMF", "tab:red")}
#: The reconstruction each method shows in the Figure 2 replica. VAE-NMF's is the generator's: a posterior
#: sample decoded by W (the paper attributes VAE-NMF's lower VAF to the latents being sampled).
FIGURE_RECONSTRUCTION = {"nmf": "fixed_w", "vae_nmf": "posterior_sample"}
PAPER_VAF_FLOOR = 0.90
CSV_FIELDS = (
    "method", "seed", "corpus", "status", "subject", "movement", "split", "reconstruction", "muscle", "vaf",
    "synergy_recovery", "job",
)  # fmt: skip


def synergy_jobs(jobs: Sequence[Job]) -> list[Job]:
    """The jobs of ``task=synergy`` (failed ones included, so the report can show them)."""
    return [j for j in jobs if j.task == "synergy"]


def _seed_key(job: Job) -> tuple[bool, int]:
    return (job.seed is None, job.seed or 0)


def _pick(jobs: Sequence[Job], method: str) -> Job | None:
    """The job of ``method`` whose ``figure_emg.npz`` to draw: an ok one that has it, lowest seed first."""
    ok = sorted((j for j in jobs if j.method == method and j.status == "ok"), key=_seed_key)
    with_figure = [j for j in ok if (j.path / "figure_emg.npz").is_file()]
    return (with_figure or ok or [None])[0]


def method_rows(jobs: Sequence[Job], method: str) -> dict[int | None, list[dict[str, Any]]]:
    """Per-movement rows of every finished job of ``method``, by seed.

    Jobs that split the subjects of one study (``data.subjects=[1],[2],...`` in a sweep, e.g. one SLURM task per
    subject) are merged; a (subject, movement) reported twice for one seed is kept once, with a warning.
    """
    by_seed: dict[int | None, dict[tuple[Any, Any], dict[str, Any]]] = {}
    for job in sorted((j for j in jobs if j.method == method and j.status == "ok"), key=_seed_key):
        rows = by_seed.setdefault(job.seed, {})
        for row in job.data.get("rows", []):
            key = (row.get("subject"), row.get("movement"))
            if key in rows:
                warnings.warn(
                    f"{method} seed {job.seed}: subject {key[0]} movement {key[1]} is in more than one job; "
                    f"using the first, ignoring {job.path}",
                    ReportWarning,
                    stacklevel=2,
                )
                continue
            rows[key] = row
    return {seed: list(rows.values()) for seed, rows in by_seed.items()}


RowsByMethod = dict[str, dict[Any, list[dict[str, Any]]]]


def rows_by_method(jobs: Sequence[Job]) -> RowsByMethod:
    """:func:`method_rows` of every method of the figure (computed once per report: it warns on duplicates)."""
    return {method: method_rows(jobs, method) for method in METHODS}


def _first_seed_rows(by_seed: dict[Any, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The rows of the lowest seed (the one the figures and the claims use)."""
    if not by_seed:
        return []
    return by_seed[min(by_seed, key=lambda s: (s is None, s or 0))]


def render_vaf_csv(jobs: Sequence[Job]) -> str:
    """One row per job x subject x movement x split x reconstruction x muscle (``muscle`` = ``all`` overall).

    A failed or missing job gives one row with its status and no VAF, so holes stay visible.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for job in jobs:
        base = {"method": job.method, "seed": job.seed, "corpus": job.corpus, "job": str(job.path)}
        if job.status != "ok":
            writer.writerow({**base, "status": job.status})
            continue
        for row in job.data.get("rows", []):
            for key, entry in sorted(row.get("vaf", {}).items()):
                split, recon = key.split("/", 1)
                common = {
                    **base,
                    "status": "ok",
                    "subject": row.get("subject"),
                    "movement": row.get("movement"),
                    "split": split,
                    "reconstruction": recon,
                    "synergy_recovery": row.get("synergy_recovery", ""),
                }
                writer.writerow({**common, "muscle": "all", "vaf": f"{entry['overall']:.6f}"})
                for muscle, value in enumerate(entry.get("per_muscle", []), start=1):
                    writer.writerow({**common, "muscle": muscle, "vaf": f"{value:.6f}"})
    return buffer.getvalue()


def _figure_arrays(job: Job | None) -> dict[str, np.ndarray] | None:
    if job is None or job.status != "ok":
        return None
    path = job.path / "figure_emg.npz"
    if not path.is_file():
        return None
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _vaf_per_muscle(X: np.ndarray, X_hat: np.ndarray) -> np.ndarray:
    from vaenmf.metrics import vaf

    return np.asarray(vaf(X, X_hat, axis=1))


def plot_figure2(jobs: Sequence[Job], split: str = "train"):
    """The Figure 2 replica: each muscle of one movement, original vs NMF vs VAE-NMF, VAF in each panel.

    Returns:
        The matplotlib figure, or None when no job left its ``figure_emg.npz``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    arrays = {m: _figure_arrays(_pick(jobs, m)) for m in METHODS}
    reference = next((a for a in arrays.values() if a is not None), None)
    if reference is None:
        return None
    X = reference[f"{split}/original"]
    rate = float(reference.get("sample_rate", np.array(100.0)))
    t = np.arange(X.shape[1]) / rate
    n_ch = X.shape[0]
    cols = 2
    rows = math.ceil(n_ch / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, 1.6 * rows + 0.8), sharex=True, squeeze=False)
    for ch in range(n_ch):
        ax = axes[ch % rows][ch // rows]
        ax.plot(t, X[ch], color="0.35", lw=0.8, label="original")
        notes = []
        for method, (label, colour) in METHODS.items():
            data = arrays[method]
            key = f"{split}/{FIGURE_RECONSTRUCTION[method]}"
            if data is None or key not in data:
                notes.append(f"{label}: missing")
                continue
            ax.plot(t, data[key][ch], color=colour, lw=0.8, alpha=0.85, label=label)
            notes.append(f"{label} {100 * _vaf_per_muscle(data[f'{split}/original'], data[key])[ch]:.1f}%")
        ax.set_title(f"muscle {ch + 1}: VAF " + ", ".join(notes), fontsize=8)
        ax.tick_params(labelsize=7)
    for ch in range(n_ch, rows * cols):
        axes[ch % rows][ch // rows].axis("off")
    axes[0][0].legend(fontsize=7, loc="upper right")
    for col in range(cols):
        axes[rows - 1][col].set_xlabel("time (s, repetitions concatenated)", fontsize=8)
    job = _pick(jobs, "nmf") or _pick(jobs, "vae_nmf")
    where = ""
    if job is not None and job.status == "ok":
        cfg = job.data.get("config", {}).get("synergy", {})
        where = f" subject {cfg.get('figure_subject', '?')}, movement {cfg.get('figure_movement', '?')},"
    fig.suptitle(
        f"Figure 2 replica:{where} {'training' if split == 'train' else 'held-out'} repetitions "
        f"(NMF: {FIGURE_RECONSTRUCTION['nmf']}, VAE-NMF: {FIGURE_RECONSTRUCTION['vae_nmf']})",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def _overall(rows: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float(r["vaf"][key]["overall"]) for r in rows if key in r.get("vaf", {})]


def plot_summary(jobs: Sequence[Job], rows: RowsByMethod | None = None):
    """VAF over every subject and movement: training vs held-out repetitions, per method and reconstruction."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = rows_by_method(jobs) if rows is None else rows
    groups, labels, colours = [], [], []
    for method, (label, colour) in METHODS.items():
        first = _first_seed_rows(rows[method])
        if not first:
            continue
        recons = ["fixed_w"] + (["posterior_mean", "posterior_sample"] if method == "vae_nmf" else [])
        for recon in recons:
            for split in ("train", "test"):
                values = _overall(first, f"{split}/{recon}")
                if values:
                    groups.append(values)
                    labels.append(f"{label}\n{recon}\n{'train' if split == 'train' else 'held-out'}")
                    colours.append(colour)
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(1.3 * len(groups) + 2, 4))
    parts = ax.boxplot(groups, patch_artist=True, widths=0.6)
    for patch, colour in zip(parts["boxes"], colours, strict=True):
        patch.set_facecolor(colour)
        patch.set_alpha(0.35)
    ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7)
    ax.axhline(PAPER_VAF_FLOOR, color="0.5", ls="--", lw=0.8)
    ax.set_ylabel("VAF (uncentred), one point per subject x movement")
    ax.set_title(f"VAF over all subjects and movements ({_describe_setup(jobs)})", fontsize=8)
    fig.tight_layout()
    return fig


def _mean_per_muscle(rows: Sequence[dict[str, Any]], key: str) -> np.ndarray | None:
    values = [r["vaf"][key]["per_muscle"] for r in rows if key in r.get("vaf", {})]
    return np.nanmean(np.array(values, dtype=np.float64), axis=0) if values else None


VAF_DEFINITION = (
    "VAF = 1 - sum (x - x_hat)^2 / sum x^2 (uncentred). Reconstructions: `fixed_w` = activations by NNLS "
    "multiplicative updates with W fixed; `posterior_mean` / `posterior_sample` = the VAE-NMF encoder's E[z] / one "
    "draw of z, decoded by max(W, 0)."
)


def _describe_setup(jobs: Sequence[Job]) -> str:
    """The rank and repetition split the jobs ran with, read from their metrics.json (not assumed)."""
    setups = set()
    for job in jobs:
        if job.status != "ok":
            continue
        data = job.data.get("config", {}).get("data", {})
        train, test = data.get("train_repetitions"), data.get("test_repetitions")
        split = f"training repetitions {train}, held-out {test}" if train and test else "unknown split"
        setups.add(f"rank-{job.data.get('rank', '?')} synergies; {split}")
    return " / ".join(sorted(setups)) if setups else "no completed job"


def render_markdown(jobs: Sequence[Job], rows: RowsByMethod | None = None) -> str:
    """Summary table (mean, std, min VAF per method, split, reconstruction) and the paper's two claims."""
    rows = rows_by_method(jobs) if rows is None else rows
    lines = [f"# Muscle synergies (Figure 2): VAF of {_describe_setup(jobs)}", ""]
    short = summarise_shortfalls(j.shortfalls for j in jobs if j.status == "ok")
    if short:
        lines += [f"**{short}**", ""]
    lines += [
        VAF_DEFINITION,
        "",
        "Mean VAF [95% interval]: Student t-interval over the subject x movement values of one seed (each movement "
        "one unit; see vaenmf.report.uncertainty).",
        "",
        "| method | split | reconstruction | mean VAF [95% interval] | std | min | movements | synergy recovery |",
        "|---|---|---|---|---|---|---|---|",
    ]
    from vaenmf.metrics import summarise_vaf

    for method, (label, _) in METHODS.items():
        for job in [j for j in jobs if j.method == method and j.status != "ok"]:
            lines.append(f"| {label} | - | - | {job.status} | | | | {job.error[:80]} ({job.path}) |")
        by_seed = rows[method]
        if not by_seed and not any(j.method == method for j in jobs):
            lines.append(f"| {label} | - | - | missing (no job) | | | | |")
        for seed in sorted(by_seed, key=lambda s: (s is None, s or 0)):
            summary = summarise_vaf(by_seed[seed])
            recovery = summary.get("synergy_recovery", {}).get("mean")
            rec = "" if recovery is None else f"{recovery:.3f}"
            for key, entry in sorted(summary.items()):
                if "vaf_mean" not in entry:
                    continue
                split, recon = key.split("/", 1)
                values = [v for v in _overall(by_seed[seed], key) if math.isfinite(v)]
                ci, _ = interval([values], centre=entry["vaf_mean"])
                spread = "" if ci is None else f" [{ci.lo:.4f}, {ci.hi:.4f}]"
                lines.append(
                    f"| {label} (seed {seed}) | {split} | {recon} | {entry['vaf_mean']:.4f}{spread} | "
                    f"{entry['vaf_std']:.4f} | {entry['vaf_min']:.4f} | {entry['n_movements']} | {rec} |"
                )
    nmf = _mean_per_muscle(_first_seed_rows(rows["nmf"]), f"train/{FIGURE_RECONSTRUCTION['nmf']}")
    vae = _mean_per_muscle(_first_seed_rows(rows["vae_nmf"]), f"train/{FIGURE_RECONSTRUCTION['vae_nmf']}")
    lines += [
        "",
        "## The paper's claims, checked on these results (training repetitions, mean per muscle)",
        "",
        f"Reconstructions as Figure 2 draws them: NMF `{FIGURE_RECONSTRUCTION['nmf']}`, VAE-NMF "
        f"`{FIGURE_RECONSTRUCTION['vae_nmf']}`.",
        "",
    ]
    if nmf is None or vae is None:
        lines.append("Not checkable: a method's job is missing or failed.")
    else:
        lines += [
            "| muscle | " + " | ".join(str(i + 1) for i in range(len(nmf))) + " |",
            "|---|" + "---|" * len(nmf),
            "| NMF | " + " | ".join(f"{v:.3f}" for v in nmf) + " |",
            "| VAE-NMF | " + " | ".join(f"{v:.3f}" for v in vae) + " |",
            "",
            f"- Both above {PAPER_VAF_FLOOR:.0%} for every muscle: "
            f"{'yes' if min(nmf.min(), vae.min()) > PAPER_VAF_FLOOR else 'no'} "
            f"(lowest: NMF {nmf.min():.3f}, VAE-NMF {vae.min():.3f}).",
            f"- VAE-NMF below NMF for every muscle: {'yes' if bool(np.all(vae < nmf)) else 'no'} "
            f"({int(np.sum(vae < nmf))} of {len(nmf)} muscles).",
        ]
    return "\n".join(lines) + "\n"


def _save(fig: Any, out: Path, stem: str) -> list[Path]:
    import matplotlib.pyplot as plt

    written = [save_figure_atomic(out / f"{stem}.{ext}", fig, dpi=150) for ext in ("png", "pdf")]
    plt.close(fig)
    return written


def write_synergy_report(jobs: Sequence[Job], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``vaf.csv``, ``fig2_vaf.md``, ``fig2_vaf.{png,pdf}`` and ``fig2_vaf_summary.{png,pdf}``.

    Raises:
        DataError: If there is no synergy job at all.
    """
    jobs = synergy_jobs(jobs)
    if not jobs:
        raise DataError("no muscle-synergy job found (metrics.json with task 'synergy'); nothing to report")
    rows = rows_by_method(jobs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [
        write_text_atomic(out / "vaf.csv", render_vaf_csv(jobs)),
        write_text_atomic(out / "fig2_vaf.md", render_markdown(jobs, rows)),
    ]
    figure = plot_figure2(jobs)
    if figure is not None:
        written += _save(figure, out, "fig2_vaf")
    summary = plot_summary(jobs, rows)
    if summary is not None:
        written += _save(summary, out, "fig2_vaf_summary")
    return written
