"""Activation estimators of the speech task: MU and the Kang et al. encoding DNN."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch

from vaenmf.data.features import magnitude
from vaenmf.data.records import TrainingSpectra, magnitudes
from vaenmf.errors import ConfigError
from vaenmf.models import EncodingDNN
from vaenmf.nmf import fit_activations
from vaenmf.nmf.masks import separate_with_activations
from vaenmf.tasks.separators import DNNSeparator, MUSeparator, encoder_training_pairs, held_out_frames


@dataclass
class _Mix:
    speech: torch.Tensor
    noise: torch.Tensor
    mixture: torch.Tensor


def _mixtures(n=3, length=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 16000
    out = []
    for i in range(n):
        speech = 0.3 * torch.sin(2 * torch.pi * (200 + 50 * i) * t) * torch.hann_window(length)
        noise = 0.05 * torch.randn(length, generator=g)
        out.append(_Mix(speech, noise, speech + noise))
    return out


def test_held_out_frames_are_the_last_mixtures_frames_for_waveforms_and_spectrograms():
    mixtures = [_Mix(*(torch.zeros(n) for _ in range(3))) for n in (4000, 6000, 9000, 12000, 16000)]
    spectra = [TrainingSpectra(f"m{i}", *magnitudes(m)) for i, m in enumerate(mixtures)]
    widths = [magnitudes(m)[0].shape[-1] for m in mixtures]
    for items in (mixtures, spectra):
        assert held_out_frames(items, 0.4) == widths[-2] + widths[-1]  # round(5 x 0.4) = 2 mixtures
        assert held_out_frames(items, 0.0) == 0
    inputs, _ = encoder_training_pairs(spectra, torch.rand(257, 2), torch.rand(257, 2), n_iter=1)
    assert inputs.shape[0] == sum(widths)  # the held-out rows are exactly the last mixtures' frames


def test_encoder_training_pairs_are_the_fixed_dictionary_activations():
    mixtures = _mixtures()
    g = torch.Generator().manual_seed(1)
    W_s, W_n = torch.rand(257, 5, generator=g), torch.rand(257, 5, generator=g)
    inputs, targets = encoder_training_pairs(mixtures, W_s, W_n, context=1, n_iter=30)
    frames = [magnitude(m.mixture).shape[1] for m in mixtures]
    assert inputs.shape == (sum(frames), 257 * 3)
    assert targets.shape == (sum(frames), 10)
    assert (targets >= 0).all()
    # The centre block of the stacked input is the noisy magnitude frame itself.
    torch.testing.assert_close(inputs[: frames[0], 257:514], magnitude(mixtures[0].mixture).T)
    # Targets of the first utterance: speech activations with W^s fixed, noise activations with W^n fixed.
    S = torch.cat([magnitude(m.speech) for m in mixtures], dim=1)
    torch.testing.assert_close(targets[:, :5], fit_activations(S, W_s, n_iter=30).T)


def test_mu_separator_output_is_a_masked_mixture():
    g = torch.Generator().manual_seed(2)
    W_s, W_n = torch.rand(257, 4, generator=g), torch.rand(257, 4, generator=g)
    Y = torch.rand(257, 50, generator=g)
    estimate = MUSeparator(W_s, W_n, n_iter=20)(Y)
    assert estimate.shape == Y.shape
    assert (estimate >= 0).all() and (estimate <= Y + 1e-6).all()


def test_mask_bases_build_the_mask_from_the_same_activations():
    """DNMF: activations with the analysis bases, the mask with the reconstruction bases."""
    g = torch.Generator().manual_seed(0)
    W_s, W_n = torch.rand(20, 3, generator=g), torch.rand(20, 3, generator=g)
    Wb_s, Wb_n = torch.rand(20, 3, generator=g), torch.rand(20, 3, generator=g)
    mag = torch.rand(20, 15, generator=g) + 0.1
    H = fit_activations(mag, torch.cat([W_s, W_n], dim=1), beta=1.0, n_iter=30)
    expected = separate_with_activations(mag, Wb_s, Wb_n, H[:3], H[3:], 2.0)
    with_bases = MUSeparator(W_s, W_n, n_iter=30, mask_bases=(Wb_s, Wb_n))(mag)
    torch.testing.assert_close(with_bases, expected)
    assert not torch.allclose(with_bases, MUSeparator(W_s, W_n, n_iter=30)(mag))

    system = SimpleNamespace(model=EncodingDNN(20, 3, hidden=8, n_layers=1))
    dnn = DNNSeparator(system, W_s, W_n, mask_bases=(Wb_s, Wb_n))
    H_s, H_n = system.model.split(system.model(mag.T))
    torch.testing.assert_close(dnn(mag), separate_with_activations(mag, Wb_s, Wb_n, H_s.T, H_n.T, 2.0))

    with pytest.raises(ConfigError, match="reconstruction bases must have the analysis bases' shapes"):
        MUSeparator(W_s, W_n, mask_bases=(Wb_s[:, :2], Wb_n))
