"""The DNMF stage of the speech task: train reconstruction bases on the training mixtures under a Trainer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from vaenmf.callbacks import EpochProgressBar
from vaenmf.data.records import magnitudes, training_data
from vaenmf.errors import ConfigError, DataError, VaenmfError
from vaenmf.nmf.divergence import check_beta
from vaenmf.nmf.dnmf import check_mask_power, dnmf_objective
from vaenmf.nmf.updates import fit_activations
from vaenmf.systems.dnmf import dnmf_dataloader
from vaenmf.tasks.runtime import JobContext, fingerprint, single_threaded
from vaenmf.validation import as_nonnegative_tensor

log = logging.getLogger(__name__)

STAGE = "dnmf_recon"
#: Keys of the ``reconstruction`` node (``conf/reconstruction/dnmf.yaml``).
RECONSTRUCTION_KEYS = (
    "name",
    "activation_beta",
    "activation_mu_iterations",
    "activation_l1",
    "mask_power",
    "mu_iterations",
    "checkpoint_every",
    "system",
)


def dnmf_training_matrices(
    mixtures: Sequence[Any],
    W_speech: torch.Tensor,
    W_noise: torch.Tensor,
    beta: float = 1.0,
    n_iter: int = 100,
    l1: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixture and clean-speech magnitudes of the training mixtures, and the mixtures' fixed-``W`` activations.

    The activations of each mixture are computed on their own, exactly as :class:`~vaenmf.tasks.separators.MUSeparator`
    computes them at test time (same flat start, which depends on the utterance's mean level), so the
    reconstruction bases are trained on the activations they will be applied to.

    Args:
        mixtures: Objects with ``mixture`` and ``speech`` waveforms (``vaenmf.data.speech.Mixture``).
        W_speech, W_noise: The analysis bases ``(m, r_s)``, ``(m, r_n)``.
        beta: Divergence of the activation updates.
        n_iter: Number of activation updates.
        l1: L1 weight on the activations.

    Returns:
        ``(M, S, H)`` with the frames of all mixtures concatenated.

    Shape:
        M, S: ``(m, N)``; H: ``(r_s + r_n, N)`` over the ``N`` frames of all mixtures.
    """
    if not mixtures:
        raise DataError(
            "DNMF trains its reconstruction bases on training mixtures, but the data module provided none "
            "(check data.n_train_utterances)"
        )
    W = torch.cat([W_speech, W_noise], dim=1)
    mags, speech_mags, activations = [], [], []
    # Per-utterance work on 257-bin spectrograms: one thread (see runtime.single_threaded).
    with single_threaded():
        for mix in mixtures:
            mixture_mag, speech_mag, _ = magnitudes(mix)
            M = mixture_mag.to(W.dtype)
            mags.append(M)
            speech_mags.append(speech_mag.to(W.dtype))
            activations.append(fit_activations(M, W, beta=beta, n_iter=n_iter, l1=l1))
    return torch.cat(mags, dim=1), torch.cat(speech_mags, dim=1), torch.cat(activations, dim=1)


def check_reconstruction_config(rcfg: DictConfig) -> tuple[float, int, float, int]:
    """Validate the ``reconstruction`` node; returns its activation beta, MU iterations and L1, and the number
    of updates of the reconstruction bases. Its ``mask_power`` is checked too (:func:`check_mask_power`)."""
    missing = [key for key in RECONSTRUCTION_KEYS if key not in rcfg]
    unknown = sorted(set(rcfg.keys()) - set(RECONSTRUCTION_KEYS))
    if missing or unknown:
        raise ConfigError(
            f"reconstruction must have exactly the keys {list(RECONSTRUCTION_KEYS)}; "
            f"missing {missing}, unknown {unknown}"
        )
    beta = check_beta(rcfg.activation_beta)
    n_iter, updates, l1 = rcfg.activation_mu_iterations, rcfg.mu_iterations, rcfg.activation_l1
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise ConfigError(f"reconstruction.activation_mu_iterations must be an integer >= 1, got {n_iter!r}")
    if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
        raise ConfigError(
            f"reconstruction.mu_iterations must be an integer >= 0 (0: reconstruction bases = analysis "
            f"bases), got {updates!r}"
        )
    if isinstance(l1, bool) or not isinstance(l1, (int, float)) or not 0 <= float(l1) < float("inf"):
        raise ConfigError(f"reconstruction.activation_l1 must be a finite number >= 0, got {l1!r}")
    if "_target_" not in rcfg.system:
        raise ConfigError("reconstruction.system must name its class in _target_")
    if "mask_power" in rcfg.system:
        raise ConfigError(
            "reconstruction.system.mask_power is not a key: the bases are trained for reconstruction.mask_power, "
            "which follows activations.mask_power (the power the separator applies)"
        )
    check_mask_power(rcfg.mask_power, "reconstruction.mask_power")
    return beta, n_iter, float(l1), updates


def check_mask_powers_agree(rcfg: DictConfig, cfg: DictConfig) -> float:
    """The mask power DNMF trains for, refused when it is not the one the separator applies at test time.

    ``reconstruction.mask_power`` interpolates ``activations.mask_power`` (``conf/reconstruction/dnmf.yaml``), so
    the two agree unless one of them is overridden on its own; then the bases would be trained for one mask and
    deployed with another (the defect of issue 9, item 3), which is an error, not a silent choice.

    Args:
        rcfg: The ``reconstruction`` node.
        cfg: The job's whole config (its ``activations`` node, when there is one, is what the separator uses).

    Returns:
        ``p``, the training and test-time mask power.

    Raises:
        ConfigError: A power below 1, or the two powers differing.
    """
    power = check_mask_power(rcfg.mask_power, "reconstruction.mask_power")
    activations = cfg.get("activations") if cfg is not None else None
    if activations is not None and "mask_power" in activations:
        applied = check_mask_power(activations.mask_power, "activations.mask_power")
        if applied != power:
            raise ConfigError(
                f"DNMF's reconstruction bases would be trained for mask power reconstruction.mask_power={power:g} "
                f"but applied with activations.mask_power={applied:g}; set activations.mask_power alone "
                "(reconstruction.mask_power follows it)"
            )
    return power


def train_reconstruction_bases(
    rcfg: DictConfig,
    job: JobContext,
    W_speech: torch.Tensor,
    W_noise: torch.Tensor,
    datamodule: Any,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DNMF reconstruction bases ``(Wb^s, Wb^n)`` trained on the data module's training mixtures.

    Activations of every training mixture are computed once with ``[W^s W^n]`` fixed; then the system of
    ``reconstruction.system`` (:class:`~vaenmf.systems.dnmf.DNMFSystem`) runs ``mu_iterations`` full-batch
    multiplicative updates of the reconstruction bases under the job's Trainer (stage ``dnmf_recon``: its own
    logs and checkpoints, resumed from ``last.ckpt`` when a previous attempt left one). The bases are trained for
    the mask of power ``reconstruction.mask_power``, which must be the separator's ``activations.mask_power``
    (:func:`check_mask_powers_agree`).

    Args:
        rcfg: The ``reconstruction`` config group (``conf/reconstruction/dnmf.yaml``).
        job: The job's context.
        W_speech, W_noise: The analysis bases (the NMF dictionaries).
        datamodule: Provides ``training_spectra()`` (or ``training_mixtures()``; :func:`~vaenmf.data.records.training_data`).
        seed: The job's seed (the updates are deterministic; kept for a uniform stage signature).

    Returns:
        ``(Wb_speech, Wb_noise)``, float32 on the CPU, the shapes of ``W_speech`` and ``W_noise``.

    Raises:
        ConfigError: A missing, unknown or invalid ``reconstruction`` key, or a training mask power that is not
            the test-time one.
        DataError: No training mixtures, or bases that are not finite and nonnegative.

    Shape:
        W_speech ``(m, r_s)``, W_noise ``(m, r_n)``; outputs the same.
    """
    beta, n_iter, l1, max_epochs = check_reconstruction_config(rcfg)
    power = check_mask_powers_agree(rcfg, job.cfg)
    W_speech = as_nonnegative_tensor(W_speech, "speech dictionary", dtype=torch.float32).cpu()
    W_noise = as_nonnegative_tensor(W_noise, "noise dictionary", dtype=torch.float32).cpu()
    if max_epochs == 0:
        log.info("%s: mu_iterations = 0, reconstruction bases = analysis bases", STAGE)
        return W_speech.clone(), W_noise.clone()
    try:
        system = instantiate(
            rcfg.system,
            W_speech=W_speech,
            W_noise=W_noise,
            mask_power=power,
            log_prefix=f"{STAGE}/",
            _convert_="all",
        )
    except InstantiationException as err:
        # Hydra wraps the system's own ConfigError in a long message with the call chain; show the error alone.
        if isinstance(err.__cause__, VaenmfError):
            raise err.__cause__ from None
        raise ConfigError(f"reconstruction.system could not be built: {err}") from None
    mixtures = training_data(datamodule)
    M, S, H = dnmf_training_matrices(mixtures, W_speech, W_noise, beta=beta, n_iter=n_iter, l1=l1)
    r_s = W_speech.shape[1]
    objective_before = _objective(system, M, S, H, r_s)
    extra = [EpochProgressBar(STAGE)] if job.cfg.trainer.get("enable_progress_bar", True) else []
    log.info(
        "%s: %d updates of the reconstruction bases for the mask of power %g on %d frames of %d training mixtures",
        STAGE,
        max_epochs,
        power,
        M.shape[1],
        len(mixtures),
    )
    job.fit_stage(
        STAGE,
        system,
        fingerprint(STAGE, W_speech, W_noise, M, S, H, rcfg, int(seed)),
        max_epochs=max_epochs,
        checkpoint_every=rcfg.get("checkpoint_every"),
        extra_callbacks=extra,
        single_device=True,
        minibatch=False,
        fit_kwargs={"train_dataloaders": dnmf_dataloader(M, S, H)},
    )
    Wb_speech, Wb_noise = system.reconstruction_bases()
    objective_after = _objective(system, M, S, H, r_s, (Wb_speech, Wb_noise))
    log.info(
        "%s: objective d_beta(S | S_hat) per entry %.5g with Wb = W, %.5g after training",
        STAGE,
        objective_before,
        objective_after,
    )
    return Wb_speech, Wb_noise


def _objective(
    system: Any,
    M: torch.Tensor,
    S: torch.Tensor,
    H: torch.Tensor,
    r_s: int,
    bases: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> float:
    Wb_speech, Wb_noise = bases or (system.Wb_speech.cpu(), system.Wb_noise.cpu())
    with torch.no_grad():
        D = dnmf_objective(
            S,
            M,
            Wb_speech,
            Wb_noise,
            H[:r_s],
            H[r_s:],
            beta=system.hparams.beta,
            power=system.hparams.mask_power,
        )
    return float(D) / S.numel()
