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
import hashlib
import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from tqdm.auto import tqdm

from vaenmf.atomic import save_npz_atomic, write_json_atomic
from vaenmf.errors import ConfigError
from vaenmf.metrics import matched_cosine, summarise_vaf, vaf
from vaenmf.models.gamma import sample_gamma
from vaenmf.nmf.updates import fit_activations
from vaenmf.tasks.dictionary import fit_statistics, train_dictionary_system
from vaenmf.tasks.runtime import JobContext, single_threaded
from vaenmf.validation import as_nonnegative_tensor, check_rank

log = logging.getLogger(__name__)

SETTINGS = ("activation_beta", "activation_mu_iterations", "figure_subject", "figure_movement")


def reconstructions(
    system: Any,
    W: torch.Tensor,
    X: torch.Tensor,
    settings: DictConfig,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Every reconstruction of ``X`` the method offers (see the module docstring).

    Shape:
        W: ``(channels, rank)``; X and each output: ``(channels, samples)``.
    """
    H = fit_activations(
        X, W, beta=float(settings.activation_beta), n_iter=int(settings.activation_mu_iterations)
    )
    out = {"fixed_w": W @ H}
    model = getattr(system, "model", None)
    if model is not None and hasattr(model, "posterior_mean"):
        model = model.cpu().eval()
        frames = X.T.contiguous()
        decoder = model.dictionary()
        with torch.no_grad():
            alpha, rate = model.encode(frames)
            out["posterior_mean"] = ((alpha / rate) @ decoder.T).T  # E_q[z], as VAENMF.posterior_mean
            z = sample_gamma(alpha, rate, sampler="implicit", generator=generator)
            out["posterior_sample"] = (z @ decoder.T).T
    return out


def _movement_result(
    cfg: DictConfig, job: JobContext, datamodule: Any, subject: int, movement: int, stage: str
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    X_train = as_nonnegative_tensor(
        datamodule.segment(subject, movement, "train"), f"subject {subject} movement {movement} EMG"
    )
    X_test = as_nonnegative_tensor(
        datamodule.segment(subject, movement, "test"), f"subject {subject} movement {movement} EMG"
    )
    check_rank(cfg.dictionary.rank, tuple(X_train.shape), name=f"subject {subject} movement {movement} EMG")
    # One global scale per fit, so the likelihood's noise level and the learning rate see unit-power data
    # whatever the electrodes' units; VAF is invariant to it (reconstructions are scaled back).
    scale = float(X_train.pow(2).mean().sqrt().clamp_min(1e-12))
    system = train_dictionary_system(job, stage, X_train / scale, cfg.dictionary, int(cfg.seed))
    W = system.dictionary().to(torch.float32)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    result: dict[str, Any] = {
        "subject": subject,
        "movement": movement,
        "n_train": int(X_train.shape[1]),
        "n_test": int(X_test.shape[1]),
        "scale": scale,
        "synergies": W.tolist(),
        "dictionary": fit_statistics(system),
        "vaf": {},
    }
    arrays: dict[str, np.ndarray] = {}
    for split, X in (("train", X_train), ("test", X_test)):
        for name, X_hat in reconstructions(system, W, X / scale, cfg.synergy, generator).items():
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


def movement_fingerprint(cfg: DictConfig) -> str:
    """Hash of what a movement's result depends on (data, model, reconstruction settings, seed), so results
    left by an earlier attempt are reused only if they were computed the same way."""
    settings = {k: v for k, v in cfg.synergy.items() if not str(k).startswith("figure_")}
    payload = {
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "dictionary": OmegaConf.to_container(cfg.dictionary, resolve=True),
        "synergy": OmegaConf.to_container(OmegaConf.create(settings), resolve=True),
        "seed": int(cfg.seed),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


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
    results: list[dict[str, Any]] = []
    for subject, movement in tqdm(work, desc="synergies", unit="movement", leave=False):
        stage = f"s{subject}_m{movement}"
        path = done_dir / f"{stage}.json"
        is_figure = (subject, movement) == figure_key
        previous = _previous_result(path, fingerprint, needs_figure=is_figure and not figure_path.is_file())
        if previous is not None:
            results.append(previous)
            continue
        result, arrays = _movement_result(cfg, job, datamodule, subject, movement, stage)
        result["fingerprint"] = fingerprint
        results.append(result)
        if rank_zero_only.rank == 0:
            # The figure's arrays first: a kill between the two writes then leaves the movement to redo, never a
            # finished movement without its figure.
            if is_figure:
                save_npz_atomic(figure_path, arrays)
            write_json_atomic(path, result)
            # The movement is recorded; its checkpoints would only fill the disk (1404 fits on full DB1).
            shutil.rmtree(job.checkpoint_dir(stage), ignore_errors=True)
    return results


def run(cfg: DictConfig, job: JobContext) -> dict[str, Any]:
    """Run one muscle-synergy job; returns the metrics (the caller writes ``metrics.json``)."""
    settings = cfg.get("synergy")
    if settings is None:
        raise ConfigError("task=synergy needs the `synergy` config node (see conf/train.yaml)")
    unknown = set(settings.keys()) - set(SETTINGS)
    if unknown:
        raise ConfigError(f"synergy does not take the keys {sorted(unknown)} (expected {list(SETTINGS)})")
    start = time.perf_counter()
    datamodule = instantiate(cfg.data)
    if not hasattr(datamodule, "segment"):
        raise ConfigError(
            f"task=synergy needs an EMG data config (data=emg_demo or data=ninapro_db1), got {cfg.data._target_}"
        )
    datamodule.setup("fit")
    timings = {"data": time.perf_counter() - start}

    work = [(s, m) for s in datamodule.subjects() for m in datamodule.movements(s)]
    figure_key = (int(settings.figure_subject), int(settings.figure_movement))
    start = time.perf_counter()
    # A movement's EMG is a 10 x ~3500 matrix: far too small for a thread pool, which on a shared machine only
    # adds spin-waiting (NMF ran at 14 instead of several hundred iterations/s); `torch_threads` overrides.
    threads = contextlib.nullcontext() if cfg.get("torch_threads") else single_threaded()
    with threads:
        results = _fit_all(cfg, job, datamodule, work, figure_key)
    timings["synergies"] = time.perf_counter() - start
    if figure_key not in work:
        log.warning(
            "synergy.figure_subject/figure_movement %s is not among the analysed movements", figure_key
        )

    summary = summarise_vaf(results)
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
        "summary": summary,
        "rows": results,
        "timings_s": timings,
    }
