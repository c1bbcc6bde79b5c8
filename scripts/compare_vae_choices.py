"""Compare the VAE-NMF likelihoods and Gamma samplers on the speech task, and write a small table.

One Hydra multirun over ``likelihood x sampler x seed`` (``model=vae_nmf``, CSV logging, no dictionary cache),
then, for every job, ``metrics.json`` (SDR and PESQ-NB per SNR, wall times) and the speech dictionary's
``csv/speech_dict/metrics.csv`` (final-epoch ELBO per frame, fraction and mass of negative decoder weights)
are gathered into ``<out>/table.md`` and ``<out>/table.json``. Rows are ``likelihood x sampler`` (values
averaged over seeds); a job that failed, or never ran, shows as such.

The Gaussian likelihood has a fixed observation variance ``sigma^2`` (``model.system.noise_var``) that must
match the scale of the data (magnitude spectra). By default the jobs use the config's value; ``--gaussian-noise-var``
overrides it (a comma list sweeps it, in a second multirun so that the other likelihoods are not run once per
value).

Usage::

    python scripts/compare_vae_choices.py --out outputs/compare_vae/ --n-test 8 --gaussian-noise-var 0.3  # ~12 min
    python scripts/compare_vae_choices.py --out outputs/compare_vae/ --table-only   # rebuild the table only
    python scripts/compare_vae_choices.py --dry-run                                 # print the Hydra command(s)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
LIKELIHOODS = ("gaussian", "poisson", "exponential")
SAMPLERS = ("rsvi", "implicit")
SEPARATORS = ("dnn", "mu")
#: The VAENMF constructor's default sigma^2, used when a job's config does not set ``noise_var``.
MODEL_DEFAULT_NOISE_VAR = 1.0
#: Grid value of a Gaussian row when ``--gaussian-noise-var`` is not given: whatever the config sets.
CONFIG_VAR = "config"
SPEECH_STAGE = "speech_dict"
LOW_SNR = "-5"


# ----------------------------------------------------------------------------------------------- arguments
def _csv_list(text: str) -> list[str]:
    return [item.strip() for item in str(text).split(",") if item.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/compare_vae"), help="output folder")
    parser.add_argument("--noise", default="factory", help="noise condition (factory, babble, pooled)")
    parser.add_argument("--epochs", type=int, default=None, help="model.max_iter (default: the config's)")
    parser.add_argument("--n-test", type=int, default=None, help="data.n_test_utterances (default: config's)")
    parser.add_argument("--separator", default="dnn", choices=SEPARATORS, help="activation estimator")
    parser.add_argument("--likelihoods", default=",".join(LIKELIHOODS), help="comma list")
    parser.add_argument("--samplers", default=",".join(SAMPLERS), help="comma list")
    parser.add_argument("--seeds", default="0", help="comma list of seeds")
    parser.add_argument(
        "--gaussian-noise-var",
        default=None,
        help="sigma^2 of the Gaussian likelihood (model.system.noise_var; default: the config's value); "
        "a comma list sweeps it",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OMP/MKL threads of the jobs (0: leave the environment alone). One thread is about as fast for "
        "these small models and does not collapse when other processes share the cores",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the Hydra command(s) and exit")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from <out>/sweeps")
    parser.add_argument("--overwrite", action="store_true", help="delete an existing <out>/sweeps first")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every job")
    args = parser.parse_args(argv)

    args.likelihoods = _csv_list(args.likelihoods)
    args.samplers = _csv_list(args.samplers)
    args.seeds = [int(s) for s in _csv_list(args.seeds)]
    try:
        args.noise_vars = [float(v) for v in _csv_list(args.gaussian_noise_var or "")]
    except ValueError:
        parser.error(f"--gaussian-noise-var must be numbers, got {args.gaussian_noise_var!r}")
    for name, values, allowed in (
        ("likelihood", args.likelihoods, LIKELIHOODS),
        ("sampler", args.samplers, SAMPLERS),
    ):
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            parser.error(f"unknown or no {name}(s) {bad}; choose from {', '.join(allowed)}")
    if not args.seeds:
        parser.error("--seeds needs at least one seed")
    if any(not (math.isfinite(v) and v > 0) for v in args.noise_vars):
        parser.error("--gaussian-noise-var must be positive numbers")
    if args.threads < 0:
        parser.error("--threads must be >= 0")
    for flag, value in (("--epochs", args.epochs), ("--n-test", args.n_test)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be >= 1")
    return args


def regenerate_command(args: argparse.Namespace) -> str:
    """The script call that regenerates this table (every choice spelt out)."""
    out = args.out.resolve()
    try:
        out_text = str(out.relative_to(REPO_ROOT))
    except ValueError:
        out_text = str(out)
    parts = ["python", "scripts/compare_vae_choices.py", "--out", out_text, "--noise", args.noise]
    if args.epochs is not None:
        parts += ["--epochs", str(args.epochs)]
    if args.n_test is not None:
        parts += ["--n-test", str(args.n_test)]
    parts += [
        "--separator",
        args.separator,
        "--likelihoods",
        ",".join(args.likelihoods),
        "--samplers",
        ",".join(args.samplers),
        "--seeds",
        ",".join(str(s) for s in args.seeds),
    ]
    if args.threads != 1:
        parts += ["--threads", str(args.threads)]
    if "gaussian" in args.likelihoods and args.noise_vars:
        parts += ["--gaussian-noise-var", ",".join(_fmt_var(v) for v in args.noise_vars)]
    return shlex.join([*parts, *args.overrides])


def _fmt_var(value: float) -> str:
    return f"{value:g}"


# ----------------------------------------------------------------------------------------------- the sweep(s)
def hydra_commands(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """``(name, argv)`` of each Hydra multirun; one unless several Gaussian noise variances are swept."""
    out = args.out.resolve()
    common = [
        f"noise={args.noise}",
        f"separator={args.separator}",
        f"seed={','.join(str(s) for s in args.seeds)}",
        "logger=csv",
        "cache_dictionaries=false",
        "trainer.enable_progress_bar=false",
        f"paths.output_root={out}",
    ]
    if args.epochs is not None:
        common.append(f"model.max_iter={args.epochs}")
    if args.n_test is not None:
        common.append(f"data.n_test_utterances={args.n_test}")
    samplers = f"model.system.sampler={','.join(args.samplers)}"
    # ``++`` adds the key whether or not conf/model/vae_nmf.yaml already has it.
    noise_var = f"++model.system.noise_var={','.join(_fmt_var(v) for v in args.noise_vars)}"
    others = [lik for lik in args.likelihoods if lik != "gaussian"]
    groups: list[tuple[str, list[str]]] = []
    if "gaussian" in args.likelihoods and len(args.noise_vars) > 1:
        groups.append(("gaussian", ["model.system.likelihood=gaussian", noise_var]))
        if others:
            groups.append(("others", [f"model.system.likelihood={','.join(others)}"]))
    else:
        # sigma^2 is only read by the Gaussian likelihood; the others ignore it.
        extra = [noise_var] if "gaussian" in args.likelihoods and args.noise_vars else []
        groups.append(("grid", [f"model.system.likelihood={','.join(args.likelihoods)}", *extra]))
    commands = []
    for name, grid in groups:
        argv = [
            sys.executable,
            "-m",
            "vaenmf.train",
            "-m",
            "model=vae_nmf",
            *grid,
            samplers,
            *common,
            f"hydra.sweep.dir={out / 'sweeps' / name}",
            *args.overrides,
        ]
        commands.append((name, argv))
    return commands


def _display(argv: Sequence[str]) -> str:
    return shlex.join(["python", *argv[1:]]) if argv and argv[0] == sys.executable else shlex.join(argv)


def sweep_env(threads: int) -> dict[str, str]:
    """The jobs' environment; ``threads > 0`` pins the OpenMP/MKL thread count (torch reads it at start)."""
    env = {**os.environ, "VAENMF_ROOT": str(REPO_ROOT)}
    env.setdefault("WANDB_MODE", "disabled")
    if threads > 0:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def run_sweeps(commands: list[tuple[str, list[str]]], out: Path, threads: int = 1) -> list[int]:
    """Run each multirun, its output both on the terminal and in ``<out>/sweeps/<name>.log``."""
    env = sweep_env(threads)
    codes = []
    for name, argv in commands:
        log_path = out / "sweeps" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        print(f"\n=== {name}: {_display(argv)}", flush=True)
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen(
                argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                log_file.write(line)
            codes.append(proc.wait())
        if codes[-1]:
            print(f"!!! multirun {name} exited with {codes[-1]}; failed jobs show in the table", flush=True)
    return codes


# ----------------------------------------------------------------------------------------------- reading jobs
@dataclass
class Job:
    """What one job directory says about itself."""

    path: Path
    likelihood: str | None
    sampler: str | None
    noise_var: float | None
    seed: int | None
    status: str  # "ok", "failed" or "no metrics.json"
    error: str = ""
    values: dict[str, float] = field(default_factory=dict)
    mtime: float = 0.0


def _read_yaml(path: Path) -> dict[str, Any] | None:
    try:
        from omegaconf import OmegaConf

        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception:
        return None
    return data if isinstance(data, dict) else None


def _overrides_config(path: Path) -> dict[str, Any] | None:
    """A minimal config rebuilt from Hydra's ``.hydra/overrides.yaml`` (for a job that wrote nothing else)."""
    try:
        from omegaconf import OmegaConf

        items = OmegaConf.to_container(OmegaConf.load(path))
    except Exception:
        return None
    system: dict[str, Any] = {}
    cfg: dict[str, Any] = {"model": {"system": system}}
    for item in items if isinstance(items, list) else []:
        key, _, value = str(item).lstrip("+").partition("=")
        if key.startswith("model.system."):
            system[key.removeprefix("model.system.")] = value
        elif key == "seed":
            cfg["seed"] = value
    return cfg


def _job_identity(cfg: dict[str, Any]) -> tuple[str | None, str | None, float | None, int | None]:
    system = ((cfg.get("model") or {}).get("system")) or {}
    likelihood = system.get("likelihood")
    sampler = system.get("sampler")
    noise_var = None
    if likelihood == "gaussian":
        noise_var = float(system.get("noise_var", MODEL_DEFAULT_NOISE_VAR))
    seed = cfg.get("seed")
    return (
        None if likelihood is None else str(likelihood),
        None if sampler is None else str(sampler),
        noise_var,
        None if seed is None else int(seed),
    )


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def last_logged(csv_path: Path, column: str) -> float:
    """The last non-empty value of ``column`` in a Lightning CSVLogger ``metrics.csv`` (NaN when absent)."""
    if not csv_path.is_file():
        return math.nan
    value = math.nan
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            cell = row.get(column)
            if cell not in (None, ""):
                value = _float(cell)
    return value


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def job_values(metrics: dict[str, Any], job_dir: Path) -> dict[str, float]:
    """The table's numbers for one successful job."""
    summary = metrics.get("summary") or {}
    snrs = sorted(summary, key=float)
    timings = metrics.get("timings_s") or {}
    stage_csv = job_dir / "csv" / SPEECH_STAGE / "metrics.csv"
    return {
        "sdr_mean": _mean([_float(summary[s].get("sdr")) for s in snrs]),
        "sdr_low": _float(summary.get(LOW_SNR, {}).get("sdr")),
        "pesq_nb_mean": _mean([_float(summary[s].get("pesq_nb")) for s in snrs]),
        "sdr_input_mean": _mean([_float(summary[s].get("sdr_input")) for s in snrs]),
        "elbo": last_logged(stage_csv, f"{SPEECH_STAGE}/elbo_epoch"),
        "neg_fraction": last_logged(stage_csv, f"{SPEECH_STAGE}/neg_fraction_epoch"),
        "neg_mass": last_logged(stage_csv, f"{SPEECH_STAGE}/neg_mass_epoch"),
        "dict_time_s": _float(timings.get("dictionaries")),
        "total_time_s": _float(metrics.get("wall_time_s")),
        "n_snrs": float(len(snrs)),
    }


def read_job(job_dir: Path) -> Job | None:
    """One job directory of a sweep, or None when it is not one."""
    metrics_path = job_dir / "metrics.json"
    metrics: dict[str, Any] | None = None
    if metrics_path.is_file():
        try:
            metrics = json.loads(metrics_path.read_text())
        except (OSError, ValueError) as err:
            metrics = {"status": "failed", "error": f"unreadable metrics.json: {err}"}
    cfg = None
    if metrics is not None and isinstance(metrics.get("config"), dict):
        cfg = metrics["config"]
    if cfg is None and (job_dir / "config.yaml").is_file():
        cfg = _read_yaml(job_dir / "config.yaml")
    if cfg is None and (job_dir / ".hydra" / "overrides.yaml").is_file():
        cfg = _overrides_config(job_dir / ".hydra" / "overrides.yaml")
    if cfg is None and metrics is None:
        return None
    likelihood, sampler, noise_var, seed = _job_identity(cfg or {})
    mtime = metrics_path.stat().st_mtime if metrics_path.is_file() else 0.0
    job = Job(job_dir, likelihood, sampler, noise_var, seed, "no metrics.json", mtime=mtime)
    if metrics is None:
        job.error = "the job wrote no metrics.json (killed or crashed)"
        return job
    if metrics.get("status") != "ok":
        job.status = "failed"
        job.error = str(metrics.get("error", "unknown error"))
        return job
    job.status = "ok"
    job.values = job_values(metrics, job_dir)
    return job


def find_jobs(sweeps_root: Path) -> list[Job]:
    """Every job directory under ``sweeps_root`` (any depth; a job dir has metrics.json, config.yaml or .hydra)."""
    jobs = []
    if not sweeps_root.is_dir():
        return jobs
    candidates = {p.parent for name in ("metrics.json", "config.yaml") for p in sweeps_root.rglob(name)}
    candidates |= {p.parent.parent for p in sweeps_root.rglob(".hydra/overrides.yaml")}
    for job_dir in sorted(candidates):
        if job_dir.name in {"csv", ".hydra"} or "checkpoints" in job_dir.parts:
            continue
        job = read_job(job_dir)
        if job is not None:
            jobs.append(job)
    return jobs


# ----------------------------------------------------------------------------------------------- the table
VALUE_KEYS = (
    "sdr_mean",
    "sdr_low",
    "pesq_nb_mean",
    "sdr_input_mean",
    "elbo",
    "neg_fraction",
    "neg_mass",
    "dict_time_s",
    "total_time_s",
)


def grid_cells(likelihoods: Sequence[str], samplers: Sequence[str], noise_vars: Sequence[float]):
    """``(likelihood, sampler, noise_var)`` of each row, in table order.

    ``noise_var`` is None for the non-Gaussian rows, and :data:`CONFIG_VAR` (any value) for the Gaussian ones
    when ``noise_vars`` is empty.
    """
    cells = []
    for likelihood in likelihoods:
        for sampler in samplers:
            for var in (noise_vars or [CONFIG_VAR]) if likelihood == "gaussian" else [None]:
                cells.append((likelihood, sampler, var))
    return cells


def _same_var(a: float | None, b: float | str | None) -> bool:
    if b == CONFIG_VAR:
        return a is not None
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9)


def build_rows(
    jobs: Sequence[Job],
    likelihoods: Sequence[str],
    samplers: Sequence[str],
    seeds: Sequence[int],
    noise_vars: Sequence[float],
) -> list[dict[str, Any]]:
    """One row per grid cell: the mean of every value over the cell's successful jobs, and its status."""
    rows = []
    for likelihood, sampler, var in grid_cells(likelihoods, samplers, noise_vars):
        per_seed: dict[int, Job] = {}
        for job in jobs:
            if (job.likelihood, job.sampler) != (likelihood, sampler) or not _same_var(job.noise_var, var):
                continue
            if job.seed not in seeds:
                continue
            # A rerun into the same folder: keep the newest job of each seed.
            if job.seed not in per_seed or job.mtime >= per_seed[job.seed].mtime:
                per_seed[job.seed] = job
        ok = [per_seed[s] for s in seeds if s in per_seed and per_seed[s].status == "ok"]
        problems = []
        for seed in seeds:
            job = per_seed.get(seed)
            if job is None:
                problems.append(f"seed {seed}: not run")
            elif job.status != "ok":
                problems.append(f"seed {seed}: {job.status}: {job.error}")
        row: dict[str, Any] = {
            "likelihood": likelihood,
            "sampler": sampler,
            "noise_var": _cell_var(var, [per_seed[s] for s in seeds if s in per_seed]),
            "seeds": [s for s in seeds if s in per_seed],
            "n_ok": len(ok),
            "n_expected": len(seeds),
            "status": "ok" if len(ok) == len(seeds) else ("failed" if not ok else "partly failed"),
            "errors": problems,
            "jobs": [str(per_seed[s].path) for s in seeds if s in per_seed],
        }
        for key in VALUE_KEYS:
            row[key] = _mean([j.values[key] for j in ok]) if ok else math.nan
        rows.append(row)
    return rows


def _cell_var(var: float | str | None, jobs: Sequence[Job]) -> float | None:
    """The sigma^2 a row reports: the grid's, or (config default) the one its jobs used."""
    if var != CONFIG_VAR:
        return var
    values = sorted({j.noise_var for j in jobs if j.noise_var is not None})
    return values[0] if len(values) == 1 else (None if not values else math.nan)


def _num(value: float, digits: int) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def render_markdown(
    rows: Sequence[dict[str, Any]], settings: dict[str, Any], command: str, hydra: list[str]
) -> str:
    """``table.md``: the regenerating command, the table, the footnotes."""
    has_gaussian = any(r["likelihood"] == "gaussian" for r in rows)
    multi_var = len({r["noise_var"] for r in rows if r["likelihood"] == "gaussian"}) > 1
    ok_sdr = [r["sdr_mean"] for r in rows if r["n_ok"] and not math.isnan(r["sdr_mean"])]
    best = max(ok_sdr) if ok_sdr else None
    lines = [
        "Regenerate with:",
        "",
        "```bash",
        command,
        "```",
        "",
        "which runs "
        + ("these Hydra multiruns" if len(hydra) > 1 else "this Hydra multirun")
        + (f" (with OMP_NUM_THREADS={settings['threads']}):" if settings["threads"] != "inherited" else ":"),
        "",
        "```bash",
        *hydra,
        "```",
        "",
        f"Speech enhancement on the {settings['corpus']} corpora, noise `{settings['noise']}`, separator "
        f"`{settings['separator']}`, {settings['epochs']} dictionary epochs, {settings['n_test']} test "
        f"utterances per SNR, seeds {settings['seeds']}"
        + (f", Gaussian sigma^2 = {settings['gaussian_noise_var']}" if has_gaussian else "")
        + ".",
        "",
    ]
    header = ["likelihood", "sampler"]
    if multi_var:
        header.append("sigma^2")
    header += [
        "SDR mean (dB)",
        f"SDR {LOW_SNR} dB",
        "PESQ-NB mean",
        "ELBO/frame (speech dict) [b]",
        "neg. W frac / mass [c]",
        "dict. time (s)",
        "total time (s)",
        "status",
    ]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        cells = [row["likelihood"], row["sampler"]]
        if multi_var:
            cells.append("" if row["noise_var"] is None else _fmt_var(row["noise_var"]))
        if row["n_ok"]:
            sdr = _num(row["sdr_mean"], 2)
            if best is not None and not math.isnan(row["sdr_mean"]) and row["sdr_mean"] == best:
                sdr = f"**{sdr}**"
            cells += [
                sdr,
                _num(row["sdr_low"], 2),
                _num(row["pesq_nb_mean"], 2),
                _num(row["elbo"], 1),
                f"{_num(row['neg_fraction'], 2)} / {_num(row['neg_mass'], 3)}",
                _num(row["dict_time_s"], 0),
                _num(row["total_time_s"], 0),
            ]
        else:
            cells += ["failed"] + [""] * 6
        if row["status"] == "ok":
            status = "ok" if row["n_expected"] == 1 else f"ok ({row['n_ok']} seeds)"
        else:
            status = f"{row['status']} ({row['n_ok']}/{row['n_expected']}): " + "; ".join(row["errors"])
        cells.append(status.replace("|", "/").replace("\n", " ")[:300])
        lines.append("| " + " | ".join(cells) + " |")
    inputs = [r["sdr_input_mean"] for r in rows if r["n_ok"] and not math.isnan(r["sdr_input_mean"])]
    lines += [
        "",
        f"SDR and PESQ-NB: of the enhanced test mixtures, averaged over the SNRs {settings['snrs']} dB (and over "
        "seeds); the unprocessed mixtures have a mean SDR of "
        + (_num(_mean(inputs), 2) if inputs else "nan")
        + " dB. Best mean SDR in bold.",
        "",
        "[b] Training ELBO per frame (nats) of the speech dictionary: the mean over the last epoch of the "
        "one-sample estimate -(recon + KL). **ELBOs of different likelihoods are not comparable**: each is a "
        "bound on the log-likelihood of the data under a different observation model (the Gaussian's depends on "
        "the fixed sigma^2; the Poisson's includes lgamma(x + 1) of non-integer magnitudes, so it is not a "
        "density of continuous data). Compare ELBOs only between the two samplers of one likelihood.",
        "",
        "[c] Decoder weights below zero at the last epoch (clipped by the dictionary handed on, max(W, 0)): "
        "their fraction of the entries and their share of sum |w_ij|.",
        "",
        "Times: wall seconds on the machine that ran the sweep (dictionary time = both dictionaries; total = "
        f"the whole job, data to scores); the jobs ran one after another, {settings['threads']} OpenMP "
        "thread(s) each.",
        "",
    ]
    return "\n".join(lines)


def write_table(
    args: argparse.Namespace, hydra: list[tuple[str, list[str]]], corpus: str = "embedded demo"
) -> tuple[list[dict[str, Any]], str]:
    """Read ``<out>/sweeps`` and write ``table.md`` and ``table.json``; returns the rows and the markdown."""
    out = args.out.resolve()
    jobs = find_jobs(out / "sweeps")
    rows = build_rows(jobs, args.likelihoods, args.samplers, args.seeds, args.noise_vars)
    first_ok = next((j for j in jobs if j.status == "ok"), None)
    snrs = "-5, 0, 5, 10"
    epochs = args.epochs
    n_test = args.n_test
    if first_ok is not None:
        metrics = json.loads((first_ok.path / "metrics.json").read_text())
        snrs = ", ".join(sorted(metrics.get("summary", {}), key=float)) or snrs
        config = metrics.get("config") or {}
        epochs = epochs or (config.get("model") or {}).get("max_iter")
        n_test = n_test or (config.get("data") or {}).get("n_test_utterances")
        corpus = (config.get("data") or {}).get("corpus", corpus)
    settings = {
        "corpus": corpus,
        "noise": args.noise,
        "separator": args.separator,
        "epochs": epochs if epochs is not None else "default",
        "n_test": n_test if n_test is not None else "default",
        "seeds": ",".join(str(s) for s in args.seeds),
        "gaussian_noise_var": ",".join(_fmt_var(v) for v in args.noise_vars)
        or "the config's ("
        + (
            ",".join(
                sorted(
                    {
                        _fmt_var(r["noise_var"])
                        for r in rows
                        if r["likelihood"] == "gaussian" and r["noise_var"] is not None
                    }
                )
            )
            or "unknown"
        )
        + ")",
        "snrs": snrs,
        "threads": args.threads if args.threads > 0 else "inherited",
    }
    command = regenerate_command(args)
    hydra_text = [_display(argv) for _, argv in hydra]
    markdown = render_markdown(rows, settings, command, hydra_text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(markdown)
    payload = {
        "command": command,
        "hydra_commands": hydra_text,
        "settings": settings,
        "rows": [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows
        ],
        "ignored_jobs": [str(j.path) for j in jobs if not any(str(j.path) in r["jobs"] for r in rows)],
    }
    (out / "table.json").write_text(json.dumps(payload, indent=2) + "\n")
    return rows, markdown


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    commands = hydra_commands(args)
    if args.dry_run:
        print(f"# regenerate: {regenerate_command(args)}")
        if args.threads > 0:
            print(f"# environment: OMP_NUM_THREADS={args.threads} MKL_NUM_THREADS={args.threads}")
        for _, command in commands:
            print(_display(command))
        return 0
    out = args.out.resolve()
    codes: list[int] = []
    if not args.table_only:
        sweeps = out / "sweeps"
        if sweeps.exists() and any(sweeps.iterdir()):
            if not args.overwrite:
                print(
                    f"{sweeps} already holds a sweep; pass --overwrite to replace it, or --table-only",
                    file=sys.stderr,
                )
                return 2
            shutil.rmtree(sweeps)
        start = time.time()
        codes = run_sweeps(commands, out, args.threads)
        print(f"\nsweeps finished in {time.time() - start:.0f} s", flush=True)
    rows, markdown = write_table(args, commands)
    print("\n" + markdown)
    print(f"written: {out / 'table.md'} and {out / 'table.json'}")
    failed = any(r["status"] != "ok" for r in rows)
    return 1 if failed or any(codes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
