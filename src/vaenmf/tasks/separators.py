"""Activation estimators of the speech task: given ``[W^s W^n]`` and a noisy magnitude, estimate the speech."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from vaenmf.callbacks import FiniteLossGuard
from vaenmf.data.features import stack_context
from vaenmf.data.matrix import TensorDataModule
from vaenmf.data.records import frame_count, magnitudes, training_data
from vaenmf.errors import ConfigError
from vaenmf.nmf.masks import separate_mu, separate_with_activations
from vaenmf.nmf.updates import fit_activations
from vaenmf.tasks.runtime import fingerprint, seed_stage, training_length

log = logging.getLogger(__name__)


class Separator(Protocol):
    """Maps a noisy magnitude spectrogram ``(F, T)`` to a speech magnitude estimate ``(F, T)``."""

    def __call__(self, mixture_mag: torch.Tensor) -> torch.Tensor: ...


MaskBases = tuple[torch.Tensor, torch.Tensor]


class MUSeparator:
    """Multiplicative-update activations with both dictionaries fixed, then the Wiener-type mask.

    Args:
        W_speech, W_noise: Dictionaries ``(F, r_s)`` and ``(F, r_n)`` (the analysis bases).
        beta: Divergence of the activation updates.
        n_iter: Number of updates.
        l1: L1 weight on the activations.
        mask_power: Exponent ``p`` of the mask.
        mask_bases: Reconstruction bases ``(Wb_s, Wb_n)`` that build the mask from the activations (DNMF);
            ``None`` uses the analysis bases, as plain NMF does.
    """

    def __init__(
        self,
        W_speech: torch.Tensor,
        W_noise: torch.Tensor,
        beta: float = 1.0,
        n_iter: int = 100,
        l1: float = 0.0,
        mask_power: float = 2.0,
        mask_bases: MaskBases | None = None,
    ) -> None:
        self.W_speech = W_speech
        self.W_noise = W_noise
        self.beta = beta
        self.n_iter = n_iter
        self.l1 = l1
        self.mask_power = mask_power
        self.mask_bases = _check_mask_bases(mask_bases, W_speech, W_noise)

    def __call__(self, mixture_mag: torch.Tensor) -> torch.Tensor:
        mixture_mag = mixture_mag.to(self.W_speech.dtype)
        estimate, H = separate_mu(
            mixture_mag,
            self.W_speech,
            self.W_noise,
            beta=self.beta,
            n_iter=self.n_iter,
            power=self.mask_power,
            l1=self.l1,
        )
        if self.mask_bases is None:
            return estimate
        r_s = self.W_speech.shape[1]
        return separate_with_activations(mixture_mag, *self.mask_bases, H[:r_s], H[r_s:], self.mask_power)


def _check_mask_bases(
    mask_bases: MaskBases | None, W_speech: torch.Tensor, W_noise: torch.Tensor
) -> MaskBases | None:
    if mask_bases is None:
        return None
    Wb_speech, Wb_noise = mask_bases
    if Wb_speech.shape != W_speech.shape or Wb_noise.shape != W_noise.shape:
        raise ConfigError(
            f"reconstruction bases must have the analysis bases' shapes {tuple(W_speech.shape)} and "
            f"{tuple(W_noise.shape)}, got {tuple(Wb_speech.shape)} and {tuple(Wb_noise.shape)}"
        )
    return Wb_speech.to(W_speech.dtype), Wb_noise.to(W_noise.dtype)


def build_mu_separator(
    cfg: DictConfig, W_speech: torch.Tensor, W_noise: torch.Tensor, mask_bases: MaskBases | None = None
) -> MUSeparator:
    """The ``activations=mu`` estimator from its config group."""
    unknown = set(cfg.keys()) - {"name", "beta", "mu_iterations", "l1", "mask_power"}
    if unknown:
        raise ConfigError(f"activations=mu does not take the keys {sorted(unknown)}")
    return MUSeparator(
        W_speech,
        W_noise,
        beta=float(cfg.beta),
        n_iter=int(cfg.mu_iterations),
        l1=float(cfg.l1),
        mask_power=float(cfg.mask_power),
        mask_bases=mask_bases,
    )


def encoder_training_pairs(
    mixtures: Sequence[Any],
    W_speech: torch.Tensor,
    W_noise: torch.Tensor,
    context: int = 0,
    beta: float = 1.0,
    n_iter: int = 100,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of the Kang et al. encoding DNN from training mixtures.

    The input is the noisy magnitude frame (stacked with ``context`` frames each side); the target is
    ``[h^s; h^n]``, the activations of the clean speech with ``W^s`` fixed and of the scaled noise actually
    mixed with ``W^n`` fixed. Activations are column-wise independent, so all utterances' frames are fitted
    in one call.

    Args:
        mixtures: Objects with ``mixture``, ``speech`` and ``noise`` waveforms (``vaenmf.data.speech.Mixture``).
        W_speech, W_noise: The fixed dictionaries.
        context: Context frames on each side.
        beta: Divergence of the target activations.
        n_iter: Multiplicative updates for the targets.

    Shape:
        Returns inputs ``(N, m (2 c + 1))`` and targets ``(N, r_s + r_n)`` over the ``N`` frames of all mixtures.

    References:
        Kang et al. 2014, Sec. III.
    """
    if not mixtures:
        raise ConfigError("the encoding DNN needs training mixtures, but the data module provided none")
    inputs, speech_mags, noise_mags = [], [], []
    for mix in mixtures:
        mixture_mag, speech_mag, noise_mag = magnitudes(mix)
        inputs.append(stack_context(mixture_mag.T, context))
        speech_mags.append(speech_mag)
        noise_mags.append(noise_mag)
    S = torch.cat(speech_mags, dim=1).to(W_speech.dtype)
    N = torch.cat(noise_mags, dim=1).to(W_noise.dtype)
    H_speech = fit_activations(S, W_speech, beta=beta, n_iter=n_iter)
    H_noise = fit_activations(N, W_noise, beta=beta, n_iter=n_iter)
    return torch.cat(inputs).to(W_speech.dtype), torch.cat([H_speech, H_noise]).T.contiguous()


class DNNSeparator:
    """Activations predicted by a trained encoding DNN, then the Wiener-type mask.

    Args:
        system: A trained :class:`~vaenmf.systems.EncodingDNNSystem`.
        W_speech, W_noise: The dictionaries whose activations it predicts.
        mask_power: Exponent ``p`` of the mask.
        mask_bases: Reconstruction bases ``(Wb_s, Wb_n)`` that build the mask (DNMF); ``None``: the dictionaries.
    """

    def __init__(
        self,
        system: Any,
        W_speech: torch.Tensor,
        W_noise: torch.Tensor,
        mask_power: float = 2.0,
        mask_bases: MaskBases | None = None,
    ) -> None:
        self.model = system.model.cpu().eval()
        self.W_speech = W_speech
        self.W_noise = W_noise
        self.mask_power = mask_power
        self.mask_bases = _check_mask_bases(mask_bases, W_speech, W_noise)

    @torch.no_grad()
    def __call__(self, mixture_mag: torch.Tensor) -> torch.Tensor:
        x = stack_context(mixture_mag.T, self.model.context).to(self.W_speech.dtype)
        H_speech, H_noise = self.model.split(self.model(x))
        W_speech, W_noise = self.mask_bases or (self.W_speech, self.W_noise)
        return separate_with_activations(
            mixture_mag.to(self.W_speech.dtype),
            W_speech,
            W_noise,
            H_speech.T,
            H_noise.T,
            self.mask_power,
        )


def held_out_frames(mixtures: Sequence[Any], val_fraction: float) -> int:
    """Frames of the last ``round(len(mixtures) * val_fraction)`` mixtures: the encoder's validation frames, at
    the end of :func:`encoder_training_pairs`' rows (whole mixtures, spectrograms or waveforms alike).

    Counting a spectrogram's width as if it were samples once held out 645 frames instead of about 72,000 on
    TIMIT's training mixtures, and trained on the rest.
    """
    n_val = int(round(len(mixtures) * val_fraction))
    return sum(frame_count(mix) for mix in mixtures[len(mixtures) - n_val :]) if n_val else 0


def build_dnn_separator(
    cfg: DictConfig,
    job: Any,
    W_speech: torch.Tensor,
    W_noise: torch.Tensor,
    datamodule: Any,
    seed: int,
    mask_bases: MaskBases | None = None,
) -> DNNSeparator:
    """Train the ``activations=dnn`` encoder on the data module's training mixtures and wrap it.

    Training mixtures come from the training split only (other speakers than the test set, the training part
    of the noise). The last ``val_fraction`` of them are held out to log a validation MSE.
    """
    mixtures = training_data(datamodule)
    inputs, targets = encoder_training_pairs(
        mixtures,
        W_speech,
        W_noise,
        context=int(cfg.system.context),
        beta=float(cfg.target_beta),
        n_iter=int(cfg.target_mu_iterations),
    )
    n_train = inputs.shape[0] - held_out_frames(mixtures, float(cfg.val_fraction))
    log.info(
        "encoder: %d training frames, %d validation frames from %d mixtures",
        n_train,
        inputs.shape[0] - n_train,
        len(mixtures),
    )
    data = TensorDataModule(
        (inputs[:n_train], targets[:n_train]),
        (inputs[n_train:], targets[n_train:]) if n_train < inputs.shape[0] else None,
        batch_size=int(cfg.batch_size),
        seed=seed,
        drop_last=n_train > int(cfg.batch_size),  # BatchNorm needs > 1 frame per batch
        val_batch_size=1024,
    )
    seed_stage(seed, "encoder")
    system = instantiate(cfg.system, n_features=W_speech.shape[0], rank=W_speech.shape[1], _convert_="all")
    if W_noise.shape[1] != W_speech.shape[1]:
        raise ConfigError(
            f"the encoding DNN predicts r activations per dictionary: speech rank {W_speech.shape[1]} and noise "
            f"rank {W_noise.shape[1]} must be equal"
        )
    stage = "encoder"
    job.fit_stage(
        stage,
        system,
        fingerprint(stage, inputs, targets, n_train, cfg, int(seed)),
        max_epochs=training_length(cfg, "activations"),
        checkpoint_every=cfg.get("checkpoint_every"),
        extra_callbacks=[FiniteLossGuard(stage)],
        fit_kwargs={"datamodule": data},
        limit_val_batches=1.0 if data.val_set else 0,
    )
    return DNNSeparator(system, W_speech, W_noise, mask_power=float(cfg.mask_power), mask_bases=mask_bases)
