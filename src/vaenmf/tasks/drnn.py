"""The DRNN column of the speech task (Huang et al. 2014): train the network on training mixtures, then separate.

No dictionaries: the network maps the noisy magnitude spectrogram to the speech estimate itself. Training uses
the data module's training mixtures only (other speakers than the test set, the training part of the noise);
targets are the clean speech magnitude and the magnitude of the scaled noise that was actually mixed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from vaenmf.callbacks import FiniteLossGuard
from vaenmf.data.matrix import TensorDataModule
from vaenmf.data.records import magnitudes, training_data
from vaenmf.errors import ConfigError, DataError
from vaenmf.models.drnn import DRNN
from vaenmf.tasks.runtime import fingerprint, seed_stage

log = logging.getLogger(__name__)

STAGE = "drnn"
#: Keys of ``network=drnn`` read here (``system`` is instantiated as a whole).
REQUIRED_KEYS = ("sequence_length", "epochs", "batch_size", "val_fraction", "system")


def drnn_training_sequences(
    mixtures: Sequence[Any], sequence_length: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut the training mixtures into fixed-length (noisy, speech, noise) magnitude sequences.

    Each utterance is cut into consecutive, non-overlapping pieces of ``sequence_length`` frames, so that batches
    are regular; the last piece of an utterance is padded at its end with zero frames. Zero frames add exactly
    nothing to the loss (the masked estimates of a zero mixture frame are zero, as are its targets), and the
    recurrence runs forward in time, so the padding reaches earlier frames only through the input context: the
    last real frame sees a zero frame as its right neighbour (at test time the edge frame is replicated), and each
    piece's first and last frames see replicated edges instead of the neighbouring piece. With one context frame
    that is two frames per 64-frame piece; the recurrence restarts at every piece.

    Args:
        mixtures: Objects with ``mixture``, ``speech`` and ``noise`` waveforms (``vaenmf.data.speech.Mixture``).
        sequence_length: Frames per sequence.

    Returns:
        ``(mixture, speech, noise)`` magnitudes.

    Shape:
        Each output ``(n_sequences, sequence_length, F)``.

    Raises:
        DataError: If there are no mixtures or their parts have different lengths.
    """
    if not mixtures:
        raise DataError("the DRNN needs training mixtures, but the data module provided none")
    pieces: list[list[torch.Tensor]] = [[], [], []]
    for mix in mixtures:
        mags = [mag.T.to(torch.float32) for mag in magnitudes(mix)]  # (T, F) each
        if not mags[0].shape == mags[1].shape == mags[2].shape:
            raise DataError(
                "mixture, speech and noise of a training mixture must have the same length, got spectrograms "
                f"{[tuple(m.shape) for m in mags]}"
            )
        n_frames = mags[0].shape[0]
        n_pieces = -(-n_frames // sequence_length)
        pad = n_pieces * sequence_length - n_frames
        for store, mag in zip(pieces, mags, strict=True):
            padded = torch.nn.functional.pad(mag, (0, 0, 0, pad))
            store.append(padded.reshape(n_pieces, sequence_length, mag.shape[1]))
    mixture, speech, noise = (torch.cat(store) for store in pieces)
    return mixture, speech, noise


class DRNNSeparator:
    """A trained DRNN as the task's separator: the whole utterance is one sequence, on the CPU, in eval mode.

    Args:
        model: The trained :class:`~vaenmf.models.drnn.DRNN` (moved to the CPU and put in eval mode).
    """

    def __init__(self, model: DRNN) -> None:
        self.model = model.cpu().eval()

    @torch.no_grad()
    def __call__(self, mixture_mag: torch.Tensor) -> torch.Tensor:
        """Speech magnitude estimate ``y1`` of a noisy magnitude spectrogram.

        Shape:
            - mixture_mag: ``(F, T)``; output: ``(F, T)``, nonnegative, at most ``mixture_mag``.
        """
        dtype = next(self.model.parameters()).dtype
        return self.model.separate(mixture_mag.to(dtype)).to(mixture_mag.dtype)


def _checked_settings(cfg: DictConfig) -> tuple[int, int, int, float]:
    missing = [key for key in REQUIRED_KEYS if key not in cfg]
    if missing:
        raise ConfigError(f"network=drnn needs the keys {missing} (see conf/network/drnn.yaml)")
    settings = []
    for key, low in (("sequence_length", 1), ("epochs", 0), ("batch_size", 1)):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"network.{key} must be an integer >= {low}, got {value!r}")
        settings.append(int(value))
    val_fraction = cfg.val_fraction
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, (int, float))
        or not 0 <= val_fraction < 1
    ):
        raise ConfigError(f"network.val_fraction must be in [0, 1), got {val_fraction!r}")
    gamma = cfg.system.get("gamma", 0.05)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 <= gamma < 1:
        # gamma >= 1 rewards moving away from the other source as much as approaching one's own: unbounded below
        # for unmasked outputs, and no longer a separation objective.
        raise ConfigError(f"network.system.gamma must be in [0, 1), got {gamma!r}")
    return settings[0], settings[1], settings[2], float(val_fraction)


def build_drnn_separator(cfg: DictConfig, job: Any, datamodule: Any, seed: int) -> DRNNSeparator:
    """Train the ``network=drnn`` network on the data module's training mixtures and wrap it.

    The last ``val_fraction`` of the training mixtures (whole utterances) are held out to log a validation
    loss; the rest are cut into ``sequence_length``-frame sequences and shuffled into batches of
    ``batch_size`` sequences.

    Args:
        cfg: The ``network`` config node (``conf/network/drnn.yaml``).
        job: The job's :class:`~vaenmf.tasks.runtime.JobContext` (trainer, checkpoints, threads).
        datamodule: A set-up speech data module (``training_spectra()``: :func:`~vaenmf.data.records.training_data`).
        seed: Seed of the batch shuffling.

    Raises:
        ConfigError: On a missing or invalid setting.
        DataError: If the data module has no training mixtures.
    """
    sequence_length, max_epochs, batch_size, val_fraction = _checked_settings(cfg)
    mixtures = list(training_data(datamodule))
    if not mixtures:
        raise DataError("the DRNN needs training mixtures, but the data module provided none")
    n_val = int(round(len(mixtures) * val_fraction))
    if n_val >= len(mixtures):
        raise ConfigError(
            f"network.val_fraction={val_fraction} holds out all {len(mixtures)} training mixtures; lower it"
        )
    train_set = drnn_training_sequences(mixtures[: len(mixtures) - n_val], sequence_length)
    val_set = drnn_training_sequences(mixtures[len(mixtures) - n_val :], sequence_length) if n_val else None
    log.info(
        "drnn: %d training and %d validation sequences of %d frames from %d mixtures",
        train_set[0].shape[0],
        0 if val_set is None else val_set[0].shape[0],
        sequence_length,
        len(mixtures),
    )
    data = TensorDataModule(train_set, val_set, batch_size, seed)
    seed_stage(seed, STAGE)
    system = instantiate(cfg.system, n_features=int(train_set[0].shape[-1]), _convert_="all")
    overrides: dict[str, Any] = {"limit_val_batches": 1.0 if val_set is not None else 0}
    if cfg.get("gradient_clip_val") is not None:
        # A ReLU recurrence is unbounded: clipping keeps a rare large step from blowing it up.
        overrides["gradient_clip_val"] = float(cfg.gradient_clip_val)
    parts = (*train_set, *(val_set or ()))
    job.fit_stage(
        STAGE,
        system,
        fingerprint(STAGE, *parts, cfg, int(seed)),
        max_epochs=max_epochs,
        checkpoint_every=cfg.get("checkpoint_every"),
        extra_callbacks=[FiniteLossGuard(STAGE)],
        fit_kwargs={"datamodule": data},
        **overrides,
    )
    return DRNNSeparator(system.model)
