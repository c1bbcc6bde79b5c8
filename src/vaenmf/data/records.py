"""The records of the speech data: a noisy :class:`Mixture` and its parts, its :class:`TrainingSpectra`, and the lazy
:class:`SpeechItem`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vaenmf.data.audio import read_audio
from vaenmf.data.features import SAMPLE_RATE, magnitude, n_frames
from vaenmf.data.synthetic import Utterance

__all__ = ["Mixture", "SpeechItem", "TrainingSpectra", "frame_count", "magnitudes", "training_data"]


@dataclass
class Mixture:
    """A noisy utterance and its parts.

    ``mixture == speech + noise`` holds exactly up to float32 rounding, and ``snr_db(speech, noise) == snr``.

    Attributes:
        name: Unique name, ``<utterance>_<noise_kind>_<snr>dB``.
        snr: The SNR in dB the noise was scaled to (over the whole utterance).
        noise_kind: The noise's name (``"factory"``, ``"babble"``, ``"white"``, a noise file's stem:
            :mod:`vaenmf.data.noises`).
        speech: Clean speech.
        noise: The scaled noise segment, as mixed.
        mixture: ``speech + noise``.
        sr: Sample rate in Hz.
        speaker: Speaker id.
        utterance: Utterance name (without noise/SNR).
        noise_offset: Start of the segment in the full noise recording (samples at ``sr``).
        scale: Factor applied jointly to speech, noise and mixture to keep the mixture's peak below 1
            (1.0 when no scaling was needed).

    Shape:
        - speech, noise, mixture: ``(time,)``, float32.
    """

    name: str
    snr: float
    noise_kind: str
    speech: torch.Tensor
    noise: torch.Tensor
    mixture: torch.Tensor
    sr: int
    speaker: str = ""
    utterance: str = ""
    noise_offset: int = -1
    scale: float = 1.0


@dataclass
class TrainingSpectra:
    """The magnitude spectrograms of a training mixture and of its parts (what the networks train on).

    Attributes:
        name: The mixture's name (:attr:`Mixture.name`).
        mixture, speech, noise: ``magnitude()`` of the mixture, the clean speech and the scaled noise.

    Shape:
        - mixture, speech, noise: ``(257, frames)``, float32, nonnegative.
    """

    name: str
    mixture: torch.Tensor
    speech: torch.Tensor
    noise: torch.Tensor


def magnitudes(item: Mixture | TrainingSpectra) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mixture, speech, noise)`` magnitudes of a training mixture, computed from a :class:`Mixture`'s waveforms
    or taken from :class:`TrainingSpectra` (the same values).

    Shape:
        - output: three ``(257, frames)`` tensors.
    """
    if isinstance(item, TrainingSpectra):
        return item.mixture, item.speech, item.noise
    return magnitude(item.mixture), magnitude(item.speech), magnitude(item.noise)


def frame_count(item: Mixture | TrainingSpectra) -> int:
    """STFT frames of a training item: its spectrogram's width, or what ``magnitude`` of its waveform gives."""
    if isinstance(item, TrainingSpectra):
        return int(item.mixture.shape[-1])
    return n_frames(item.mixture.shape[-1])


def training_data(datamodule: Any) -> list[Mixture] | list[TrainingSpectra]:
    """What a method trains on: the data module's ``training_spectra()`` when it has them (prepared once, possibly
    from the feature cache), else its ``training_mixtures()`` (their magnitudes are the same: :func:`magnitudes`)."""
    if hasattr(datamodule, "training_spectra"):
        return datamodule.training_spectra()
    return datamodule.training_mixtures()


@dataclass
class SpeechItem:
    """An utterance that is read (TIMIT) or synthesised (demo) when needed, so that planning the splits is cheap.

    Attributes:
        speaker: Speaker id (TIMIT and demo ids start with the gender letter).
        name: Utterance name, unique within the corpus.
        path: The audio file (TIMIT), or None.
        synth: Synthesises the utterance (demo), or None.
    """

    speaker: str
    name: str
    path: Path | None = None
    synth: Callable[[], Utterance] | None = field(default=None, repr=False)

    def load(self) -> torch.Tensor:
        """The waveform at the pipeline's sample rate.

        Shape:
            - output: ``(time,)``, float32.
        """
        if self.synth is not None:
            return self.synth().wave
        assert self.path is not None
        wave, _ = read_audio(self.path, target_sr=SAMPLE_RATE)
        return wave
