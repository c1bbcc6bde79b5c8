"""The muscle-synergy task (the paper's Figure 2): one Hydra job = one method over every subject and movement.

For each subject and movement: extract ``rank`` synergies from the training repetitions with the configured
dictionary method (NMF or VAE-NMF), reconstruct the training and the held-out repetitions with them, and score
the variance accounted for (VAF, uncentred) per muscle and overall. Reconstructions:

- ``fixed_w``: activations by multiplicative updates with ``W`` fixed (Euclidean, i.e. NNLS; every method);
- ``posterior_mean``: the VAE-NMF encoder's ``E_q[z] = alpha / beta`` decoded by ``max(W, 0)``;
- ``posterior_sample``: one draw ``z ~ q(z | x)`` decoded the same way (what the VAE-NMF generator produces).

Each (subject, movement) result is written to ``movements/`` as soon as it is done, so a killed job resumes
where it stopped (the movement in progress resumes from its ``last.ckpt``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from tqdm.auto import tqdm

from vaenmf.atomic import save_npz_atomic, write_json_atomic
from vaenmf.data.shortfalls import shortfall_text
from vaenmf.errors import ConfigError
from vaenmf.metrics import matched_cosine, summarise_vaf, vaf
from vaenmf.metrics.pool import job_cpus
from vaenmf.models.gamma import posterior_activations
from vaenmf.nmf.batched import fit_activations_batched, nmf_batched
from vaenmf.nmf.updates import fit_activations
from vaenmf.tasks.dictionary import fit_statistics, train_dictionary_system
from vaenmf.tasks.runtime import JobContext, fingerprint, seed_stage, single_threaded, training_length
from vaenmf.tasks.stages import StageClock
from vaenmf.tracking import log_synergy_results, log_training_history
from vaenmf.validation import as_nonnegative_tensor, check_rank

log = logging.getLogger(__name__)

SETTINGS = (
    "activation_beta",
    "activation_mu_iterations",
    "batched",
    "workers",
    "figure_subject",
    "figure_movement",
)


#: Below this much training (models x Adam steps), ``synergy.workers: null`` keeps the stacks in the job's own
#: process: spawning workers costs seconds of start-up (torch and the package imported afresh: the demo's
#: 16-movement stage of about 700 model-steps took 9.0 s of wall time with two workers, against 3.2 s of CPU in
#: all), while a model-step costs about 2.4 ms on one core (make bench), so at 10,000 model-steps (about 24 s of
#: work) a second worker saves more than it costs.
MIN_MODEL_STEPS_FOR_WORKERS = 10_000


def stack_device(cfg: DictConfig) -> str:
    """Where the batched synergy fits run: ``"cuda"`` when the job's Trainer is on a GPU, else ``"cpu"``."""
    return "cuda" if str(cfg.trainer.get("accelerator")) in ("gpu", "cuda") else "cpu"


def stack_workers(
    setting: Any, device: str, model_steps: int | None = None, environ: dict[str, str] | None = None
) -> int:
    """Processes that train the VAE-NMF stacks (``synergy.workers``): the setting when given, else one per CPU
    of the job on the CPU (:func:`vaenmf.metrics.pool.job_cpus`: 1 in a local sweep of one-CPU jobs, 2 for a
    job alone on a 2-core laptop, ``cpus_per_task`` on a SLURM node), 1 on a GPU, and 1 for a job with less
    training than :data:`MIN_MODEL_STEPS_FOR_WORKERS` (``model_steps``, when known). The results are the same
    for any value.

    Raises:
        ConfigError: If the setting is not null or a whole number >= 1, or above 1 on a GPU.
    """
    if setting is None:
        if device != "cpu" or (model_steps is not None and model_steps < MIN_MODEL_STEPS_FOR_WORKERS):
            return 1
        return job_cpus(environ)
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ConfigError(
            f"synergy.workers must be null (one per CPU of the job) or a whole number >= 1, got {setting!r}"
        )
    if setting > 1 and device != "cpu":
        raise ConfigError(
            f"synergy.workers={setting} starts CPU processes; on a GPU the stacks train in the job's process "
            "(set synergy.workers=null or 1)"
        )
    return int(setting)


def reconstructions(
    W: torch.Tensor,
    X: torch.Tensor,
    settings: DictConfig,
    generator: torch.Generator,
    posterior: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    H: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Every reconstruction of ``X`` the method offers (see the module docstring).

    Args:
        W: The synergies handed on (unit columns).
        X: The EMG to reconstruct.
        settings: The ``synergy`` node (activation beta and multiplicative-update iterations).
        generator: Generator of the posterior draw.
        posterior: VAE-NMF only: ``(alpha, rate, decoder)`` of ``q(z | x)`` for the columns of ``X`` and the
            unnormalised ``max(W, 0)`` they go with.
        H: The fixed-W activations when already computed (the batched path), else fitted here.

    Shape:
        W: ``(channels, rank)``; X and each output: ``(channels, samples)``; alpha, rate ``(rank, samples)``.
    """
    if H is None:
        H = fit_activations(
            X, W, beta=float(settings.activation_beta), n_iter=int(settings.activation_mu_iterations)
        )
    out = {"fixed_w": W @ H}
    if posterior is not None:
        alpha, rate, decoder = posterior
        out["posterior_mean"] = decoder @ posterior_activations(alpha, rate, "mean")
        out["posterior_sample"] = decoder @ posterior_activations(alpha, rate, "sample", generator)
    return out


def _encoder_posterior(
    system: Any, X: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``(alpha, rate, max(W, 0))`` of a trained VAE-NMF system for the columns of ``X``; None for NMF."""
    model = getattr(system, "model", None)
    if model is None or not hasattr(model, "encode"):
        return None
    model = model.cpu().eval()
    with torch.no_grad():
        alpha, rate = model.encode(X.T.contiguous())
    return alpha.T, rate.T, model.dictionary()


def _movement_data(cfg: DictConfig, datamodule: Any, subject: int, movement: int) -> tuple[torch.Tensor, ...]:
    """The training and held-out EMG of one movement, and the scale its fits see (unit mean square)."""
    name = f"subject {subject} movement {movement} EMG"
    X_train = as_nonnegative_tensor(datamodule.segment(subject, movement, "train"), name, dtype=torch.float32)
    X_test = as_nonnegative_tensor(datamodule.segment(subject, movement, "test"), name, dtype=torch.float32)
    check_rank(cfg.dictionary.rank, tuple(X_train.shape), name=name)
    # One global scale per fit, so the likelihood's noise level and the learning rate see unit-power data
    # whatever the electrodes' units; VAF is invariant to it (reconstructions are scaled back).
    return X_train, X_test, X_train.pow(2).mean().sqrt().clamp_min(1e-12)


def _movement_result(
    cfg: DictConfig,
    datamodule: Any,
    subject: int,
    movement: int,
    data: tuple[torch.Tensor, ...],
    W: torch.Tensor,
    stats: dict[str, float],
    splits: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A movement's record (VAF of every split and reconstruction) and the arrays Figure 2 draws.

    Args:
        data: :func:`_movement_data`.
        W: The synergies (unit columns).
        stats: What the fit reports about its dictionary.
        splits: Per split (``train``, ``test``): ``H`` (fixed-W activations or None) and ``posterior``.
    """
    X_train, X_test, scale = data
    generator = torch.Generator().manual_seed(int(cfg.seed))
    result: dict[str, Any] = {
        "subject": subject,
        "movement": movement,
        "n_train": int(X_train.shape[1]),
        "n_test": int(X_test.shape[1]),
        "scale": float(scale),
        "synergies": W.tolist(),
        "dictionary": stats,
        "vaf": {},
    }
    arrays: dict[str, np.ndarray] = {}
    for split, X in (("train", X_train), ("test", X_test)):
        parts = splits[split]
        for name, X_hat in reconstructions(W, X / scale, cfg.synergy, generator, **parts).items():
            X_hat = X_hat * scale
            result["vaf"][f"{split}/{name}"] = {
                "overall": float(vaf(X, X_hat)),
                "per_muscle": [float(v) for v in vaf(X, X_hat, axis=1)],
            }
            arrays[f"{split}/{name}"] = X_hat.numpy()
        arrays[f"{split}/original"] = X.numpy()
    arrays["sample_rate"] = np.array(float(getattr(datamodule, "sample_rate", 100)))
    truth = datamodule.true_synergies(subject, movement)
    if truth is not None:
        result["synergy_recovery"] = matched_cosine(W.numpy(), truth)
    return result, arrays


def _fit_one(
    cfg: DictConfig, job: JobContext, stage: str, data: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, dict[str, float], dict[str, dict[str, Any]]]:
    """One movement under its own Trainer (``synergy.batched=false``): synergies, statistics, reconstructions."""
    X_train, X_test, scale = data
    system = train_dictionary_system(job, stage, X_train / scale, cfg.dictionary, int(cfg.seed))
    splits = {
        split: {"posterior": _encoder_posterior(system, X / scale)}
        for split, X in (("train", X_train), ("test", X_test))
    }
    return system.dictionary().to(torch.float32), fit_statistics(system), splits


def _fit_batched(
    cfg: DictConfig, job: JobContext, data: list[tuple[torch.Tensor, ...]], labels: list[tuple[int, int]]
) -> list[tuple[torch.Tensor, dict[str, float], dict[str, dict[str, Any]]]]:
    """Every movement of the job as one batched computation (``synergy.batched=true``, the default).

    NMF: :func:`vaenmf.nmf.nmf_batched` over all movements (ragged lengths masked exactly); VAE-NMF: one
    vectorised stack of models (:func:`vaenmf.models.vae_nmf_stack.fit_vae_nmf_stack`), each trained as its own
    ``VAENMFSystem`` fit would be (same seed, batches and Adam), checkpointed under ``checkpoints/vae_nmf_stack``
    so that a killed job resumes. The fixed-W activations of every split are one batched call too.
    """
    dictionary = cfg.dictionary
    system = OmegaConf.to_container(dictionary.system, resolve=True)
    assert isinstance(system, dict)
    fit_seed = seed_stage(int(cfg.seed), "dictionary")  # the seed each one-at-a-time fit would use
    train = [X / scale for X, _, scale in data]
    test = [X / scale for _, X, scale in data]
    device = stack_device(cfg)
    posteriors: dict[str, list[Any]] = {"train": [None] * len(data), "test": [None] * len(data)}
    stats: list[dict[str, float]] = [{} for _ in data]
    if dictionary.name == "nmf":
        fit = nmf_batched(
            train,
            int(dictionary.rank),
            beta=float(system["beta"]),
            n_iter=job.stage_epochs(training_length(dictionary, "dictionary")),
            seed=fit_seed,
            device=device,
            l1=float(system.get("l1", 0.0)),
        )
        W_all = fit.dictionaries(str(system.get("normalize", "l2"))).cpu().to(torch.float32)
    else:
        from vaenmf.models.vae_nmf_stack import fit_vae_nmf_stack

        optimizer = system.pop("optimizer", None) or {}
        extra = {k: v for k, v in system.items() if k not in ("_target_", "normalize", "init_from_data")}
        epochs = job.stage_epochs(training_length(dictionary, "dictionary"))
        batch = int(dictionary.batch_size)
        model_steps = epochs * sum(math.ceil(int(X.shape[1]) / batch) for X in train)
        fit = fit_vae_nmf_stack(
            train,
            int(dictionary.rank),
            max_epochs=epochs,
            batch_size=batch,
            lr=float(optimizer.get("lr", 1e-3)),
            weight_decay=float(optimizer.get("weight_decay", 5e-4)),
            seeds=fit_seed,
            init_from_data=bool(system.get("init_from_data", True)),
            normalize=str(system.get("normalize", "l2")),
            device=device,
            checkpoint_dir=job.checkpoint_dir("vae_nmf_stack"),
            checkpoint_every=int(dictionary.checkpoint_every),
            progress=bool(cfg.trainer.get("enable_progress_bar", True)),
            workers=stack_workers(cfg.synergy.get("workers"), device, model_steps),
            **extra,
        )
        W_all = fit.dictionaries.to(torch.float32)
        if fit.timings:
            # Stacks run one after the other in each worker and side by side across workers: the epochs'
            # wall time is the slowest worker's sum over its stacks (not one stack's, which undercounted it).
            spent = fit.training_time()
            job.epoch_timings["vae_nmf_stack"] = {
                "epochs": spent["epochs"],
                "seconds": spent["seconds"],
                "per_epoch_seconds": spent["per_epoch_seconds"],
                "stacks": len(fit.timings),
                "workers": spent["processes"],
                "worker_cpu_seconds": spent["worker_cpu_seconds"],
                "worker_peak_rss_mb": spent["worker_peak_rss_mb"],
                # The stack steps all models at once; the longest movement sets its steps per epoch.
                "batches_per_epoch": int(fit.steps.max()) // max(int(fit.epochs), 1),
            }
        decoders = fit.decoders().to(torch.float32)
        for split, Xs in (("train", train), ("test", test)):
            posteriors[split] = [(a, b, decoders[k]) for k, (a, b) in enumerate(fit.posterior(Xs))]
        stats = [fit_statistics(fit.model(k)) for k in range(len(data))]
        log_training_history(job, "stack", fit.history, fit.metric_names, labels)  # W&B: stack/<metric>_mean
    W_list = [W_all[k] for k in range(len(data))]
    activations = {
        split: fit_activations_batched(
            Xs,
            W_list,
            beta=float(cfg.synergy.activation_beta),
            n_iter=int(cfg.synergy.activation_mu_iterations),
        )
        for split, Xs in (("train", train), ("test", test))
    }
    return [
        (
            W_list[k],
            stats[k],
            {
                split: {"H": activations[split][k], "posterior": posteriors[split][k]}
                for split in ("train", "test")
            },
        )
        for k in range(len(data))
    ]


def movement_fingerprint(cfg: DictConfig) -> str:
    """Hash of what a movement's result depends on (data, dictionary learner, reconstruction settings, the
    stages' cap, seed, code), so results left by an earlier attempt are reused only if computed the same way."""
    settings = {k: v for k, v in cfg.synergy.items() if not str(k).startswith("figure_") and k != "workers"}
    return fingerprint(
        "movement", cfg.data, cfg.dictionary, settings, cfg.get("max_stage_epochs"), int(cfg.seed)
    )


def _previous_result(path: Path, fingerprint: str, needs_figure: bool) -> dict[str, Any] | None:
    """A movement finished by an earlier attempt of this job, if it is still valid."""
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        log.warning("%s is unreadable; refitting that movement", path)
        return None
    if result.get("fingerprint") != fingerprint:
        log.warning("%s was computed with other settings; refitting that movement", path)
        return None
    if needs_figure:
        log.info("%s: refitting to draw Figure 2 (figure_emg.npz is missing)", path.stem)
        return None
    log.info("%s: done in a previous attempt of this job (%s)", path.stem, path)
    return result


def _fit_all(
    cfg: DictConfig,
    job: JobContext,
    datamodule: Any,
    work: list[tuple[int, int]],
    figure_key: tuple[int, int],
) -> list[dict[str, Any]]:
    """Every (subject, movement) result, fitting those that a previous attempt of this job did not finish."""
    done_dir = job.output_dir / "movements"
    figure_path = job.output_dir / "figure_emg.npz"
    fingerprint = movement_fingerprint(cfg)
    results: dict[tuple[int, int], dict[str, Any]] = {}
    todo = []
    for subject, movement in work:
        is_figure = (subject, movement) == figure_key
        path = done_dir / f"s{subject}_m{movement}.json"
        previous = _previous_result(path, fingerprint, needs_figure=is_figure and not figure_path.is_file())
        if previous is None:
            todo.append((subject, movement))
        else:
            results[(subject, movement)] = previous
    data = [_movement_data(cfg, datamodule, s, m) for s, m in todo]
    if todo and bool(cfg.synergy.batched):
        log.info("fitting rank-%d %s synergies of %d movements in one batched computation",
                 cfg.dictionary.rank, cfg.dictionary.name, len(todo))  # fmt: skip
        fits: Any = _fit_batched(cfg, job, data, todo)
    else:
        fits = (
            _fit_one(cfg, job, f"s{s}_m{m}", d) for (s, m), d in zip(tqdm(todo, desc="synergies", unit="movement",
                                                                            leave=False), data, strict=True)
        )  # fmt: skip
    for (subject, movement), movement_data, (W, stats, splits) in zip(todo, data, fits, strict=True):
        stage = f"s{subject}_m{movement}"
        result, arrays = _movement_result(cfg, datamodule, subject, movement, movement_data, W, stats, splits)
        result["fingerprint"] = fingerprint
        results[(subject, movement)] = result
        if rank_zero_only.rank == 0:
            # The figure's arrays first: a kill between the two writes then leaves the movement to redo, never a
            # finished movement without its figure.
            if (subject, movement) == figure_key:
                save_npz_atomic(figure_path, arrays)
            write_json_atomic(done_dir / f"{stage}.json", result)
            # The movement is recorded; its checkpoints would only fill the disk (1404 fits on full DB1).
            shutil.rmtree(job.checkpoint_dir(stage), ignore_errors=True)
    if rank_zero_only.rank == 0:
        shutil.rmtree(job.checkpoint_dir("vae_nmf_stack"), ignore_errors=True)
    return [results[key] for key in work]


def run(cfg: DictConfig, job: JobContext) -> dict[str, Any]:
    """Run one muscle-synergy job; returns the metrics (the caller writes ``metrics.json``)."""
    settings = cfg.get("synergy")
    if settings is None:
        raise ConfigError("task=synergy needs the `synergy` config node (see conf/train.yaml)")
    unknown = set(settings.keys()) - set(SETTINGS)
    if unknown:
        raise ConfigError(f"synergy does not take the keys {sorted(unknown)} (expected {list(SETTINGS)})")
    device = stack_device(cfg)
    stack_workers(settings.get("workers"), device)  # a bad value is refused before the data are read
    clock = StageClock()
    with clock.stage("data"):
        datamodule = instantiate(cfg.data)
        if not hasattr(datamodule, "segment"):
            raise ConfigError(
                "task=synergy needs an EMG data config (data=emg_demo or data=ninapro_db1), got "
                f"{cfg.data._target_}"
            )
        datamodule.setup("fit")

    work = [(s, m) for s in datamodule.subjects() for m in datamodule.movements(s)]
    figure_key = (int(settings.figure_subject), int(settings.figure_movement))
    # A movement's EMG is a 10 x ~3500 matrix: far too small for a thread pool, which on a shared machine only
    # adds spin-waiting (NMF ran at 14 instead of several hundred iterations/s); `torch_threads` overrides.
    threads = contextlib.nullcontext() if cfg.get("torch_threads") else single_threaded()
    with threads, clock.stage("synergies"):
        results = _fit_all(cfg, job, datamodule, work, figure_key)
    # The stacks' worker processes ran part of the stage: their CPU time is the job's too.
    clock.add_cpu("synergies", job.epoch_timings.get("vae_nmf_stack", {}).get("worker_cpu_seconds", 0.0))
    if figure_key not in work:
        log.warning(
            "synergy.figure_subject/figure_movement %s is not among the analysed movements", figure_key
        )

    summary = summarise_vaf(results)
    shortfalls = datamodule.shortfalls() if hasattr(datamodule, "shortfalls") else []
    for entry in shortfalls:
        log.warning("short of the protocol: %s", shortfall_text(entry))
    for key, entry in summary.items():
        if "vaf_mean" in entry:
            log.info(
                "VAF %-24s %.4f +- %.4f over %d movements",
                key,
                entry["vaf_mean"],
                entry["vaf_std"],
                entry["n_movements"],
            )
    if "synergy_recovery" in summary:
        log.info("synergy recovery (matched cosine): mean %.3f", summary["synergy_recovery"]["mean"])
    log_synergy_results(job, results, job.output_dir / "figure_emg.npz")  # W&B: movements, figure2/movement
    job.log_summary(
        {
            f"vaf/{k}": v["vaf_mean"]
            for k, v in summary.items()
            if "vaf_mean" in v and not math.isnan(v["vaf_mean"])
        }
    )
    return {
        "corpus": str(cfg.data.get("corpus", "demo")),
        "rank": int(cfg.dictionary.rank),
        # What the recordings gave fewer of than the job asked (vaenmf.data.shortfalls); [] when nothing.
        "shortfalls": shortfalls,
        "summary": summary,
        "rows": results,
        **clock.metrics(),  # wall and CPU seconds and peak memory per stage (vaenmf.tasks.stages)
        # Per trained stage, the epochs this job ran and their wall seconds (a resumed stage's earlier ones not
        # counted): what scales a short dry run's stage to the protocol's epochs (scripts/dry_run.py).
        "training_epochs": job.epoch_timings,
    }
