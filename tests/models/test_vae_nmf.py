"""Tests of the VAE-NMF module: loss terms, training behaviour, dictionary recovery and input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Exponential, Normal, Poisson

from vaenmf.errors import ConfigError, DataError
from vaenmf.metrics import matched_cosine
from vaenmf.models import LIKELIHOODS, VAENMF, kl_gamma


def _synthetic(
    seed: int, m: int = 10, r: int = 4, n: int = 2000
) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """X = Z W^T + small noise with a sparse nonnegative W (m, r), one dominant entry per atom, Z ~ Gamma(0.5)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(m, r, generator=g) * (torch.rand(m, r, generator=g) < 0.5)
    w[torch.randint(0, m, (r,), generator=g), torch.arange(r)] += 1.0
    z = torch._standard_gamma(torch.full((n, r), 0.5), generator=g)
    x = z @ w.T + 0.01 * torch.rand(n, m, generator=g)
    return x, w, g


def _train(
    model: VAENMF, x: torch.Tensor, g: torch.Generator, steps: int, batch: int, lr: float = 1e-2
) -> list:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (batch,), generator=g)
        out = model(x[idx], generator=g)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    return losses


def _fit(seed: int, steps: int = 800, batch: int = 512, **kw) -> tuple[VAENMF, torch.Tensor, list]:
    x, w_true, g = _synthetic(seed)
    torch.manual_seed(seed)  # the encoder's default initialisation
    kw = {"hidden": (64, 64), "noise_var": 0.01, **kw}
    model = VAENMF(10, 4, **kw)
    model.reset_dictionary(x, generator=g)
    losses = _train(model, x, g, steps, batch)
    return model, w_true, losses


def test_loss_decreases() -> None:
    x, _, g = _synthetic(0)
    torch.manual_seed(0)
    model = VAENMF(10, 4, hidden=(64, 64), noise_var=0.1)
    model.reset_dictionary(x, generator=g)
    losses = _train(model, x, g, steps=200, batch=128)
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < 0.5 * first, (first, last)


def _initial_cosine(seed: int) -> float:
    """Matched cosine of the untrained dictionary (``reset_dictionary``, as ``_fit`` starts) with the truth."""
    x, w_true, g = _synthetic(seed)
    torch.manual_seed(seed)
    model = VAENMF(10, 4, hidden=(64, 64), noise_var=0.01)
    model.reset_dictionary(x, generator=g)
    return matched_cosine(model.dictionary(), w_true)


def test_recovers_known_dictionary(frame_baseline) -> None:
    model, w_true, _ = _fit(seed=1)
    w = model.dictionary()
    cos = matched_cosine(w, w_true)
    x, _, _ = _synthetic(1)
    # What the data gives for free on this generator: 4 random data frames match at 0.873 on average (95th
    # percentile 0.940, best of 500 picks 0.970), the untrained dictionary at 0.802. Training must clearly beat
    # both (measured: 0.992).
    frames = frame_baseline(x.T, w_true, rank=4)
    assert cos >= np.quantile(frames, 0.95) + 0.03, (cos, np.quantile(frames, 0.95))
    assert cos >= _initial_cosine(1) + 0.15, (cos, _initial_cosine(1))
    mean = model.posterior_mean(x[:256])
    assert mean.shape == (256, 4) and bool((mean > 0).all())


@pytest.mark.slow
def test_recovers_known_dictionary_over_seeds(frame_baseline) -> None:
    """Seeds 0-4, measured: 0.995, 0.992, 0.988, 0.910, 0.992 against random frames' 95th percentiles 0.894,
    0.940, 0.920, 0.926, 0.905 (means 0.78-0.87) and untrained dictionaries' 0.70-0.80: seed 3 recovers three of
    the four atoms, below the best random picks but well above a typical one."""
    margins_p95, margins_mean, gains = [], [], []
    for seed in range(5):
        x, w_true, _ = _synthetic(seed)
        cos = matched_cosine(_fit(seed=seed)[0].dictionary(), w_true)
        frames = frame_baseline(x.T, w_true, rank=4)
        margins_p95.append(cos - float(np.quantile(frames, 0.95)))
        margins_mean.append(cos - float(frames.mean()))
        gains.append(cos - _initial_cosine(seed))
    assert min(margins_mean) >= 0.05 and min(gains) >= 0.1, (margins_mean, gains)
    assert float(np.mean(margins_p95)) >= 0.04, margins_p95


def test_same_seed_same_result_bitwise() -> None:
    def run() -> tuple[torch.Tensor, list]:
        model, _, losses = _fit(seed=2, steps=30, batch=64)
        return model.W.detach().clone(), losses

    (w1, l1), (w2, l2) = run(), run()
    assert torch.equal(w1, w2) and l1 == l2


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("sampler", ["rsvi", "implicit"])
def test_all_likelihoods_train_with_finite_losses(likelihood: str, sampler: str) -> None:
    model, _, losses = _fit(seed=3, steps=40, batch=64, likelihood=likelihood, sampler=sampler)
    assert all(math.isfinite(v) for v in losses)
    x, _, g = _synthetic(3)
    out = model(x[:32], generator=g)
    for key in ("recon", "kl", "penalty", "loss", "elbo"):
        assert out[key].shape == () and bool(torch.isfinite(out[key])), key
    torch.testing.assert_close(out["elbo"], -(out["recon"] + out["kl"]))
    torch.testing.assert_close(out["loss"], out["recon"] + out["kl"] + out["penalty"])


def _model_and_batch(likelihood: str = "gaussian", **kw) -> tuple[VAENMF, torch.Tensor, torch.Generator]:
    g = torch.Generator().manual_seed(4)
    torch.manual_seed(4)
    model = VAENMF(6, 3, hidden=(16,), likelihood=likelihood, **kw).double()
    x = torch.poisson(3.0 * torch.rand(8, 6, generator=g, dtype=torch.float64), generator=g)
    return model, x, g


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_negative_log_likelihoods_match_torch_distributions(likelihood: str) -> None:
    model, x, g = _model_and_batch(likelihood, noise_var=0.3)
    x_hat = torch.rand(8, 6, generator=g, dtype=torch.float64) * 4 + 0.1
    ours = model.neg_log_likelihood(x, x_hat)
    if likelihood != "gaussian":
        x_hat = x_hat + model.likelihood_floor  # the positive likelihoods add a small floor to the mean
    if likelihood == "gaussian":
        ref = -Normal(x_hat, math.sqrt(0.3)).log_prob(x).sum(-1)
    elif likelihood == "poisson":
        ref = -Poisson(x_hat).log_prob(x).sum(-1)
    else:
        ref = -Exponential(1.0 / x_hat).log_prob(x).sum(-1)
    torch.testing.assert_close(ours, ref)


def test_loss_terms_match_their_definitions() -> None:
    model, x, g = _model_and_batch(prior_shape=0.7, penalty_weight=3.0, kl_weight=0.5)
    with torch.no_grad():
        model.W[0, 0] = -0.5
        model.W[2, 1] = -0.25
    out = model(x, generator=g)
    torch.testing.assert_close(out["x_hat"], out["z"] @ model.W.T)
    kl = kl_gamma(out["alpha"], out["beta"], 0.7, 1.0).sum(-1).mean()
    torch.testing.assert_close(out["kl"], kl)
    # Eq. 4-5: gamma / 2 * sum of squared negative weights, once per batch.
    torch.testing.assert_close(out["penalty"], torch.tensor(1.5 * (0.25 + 0.0625), dtype=torch.float64))
    torch.testing.assert_close(out["loss"], out["recon"] + 0.5 * out["kl"] + out["penalty"])
    fraction, mass = model.negative_weight_stats()
    assert float(fraction) == pytest.approx(2 / 18)
    assert float(mass) == pytest.approx(0.75 / float(model.W.detach().abs().sum()))
    d = model.dictionary()
    assert d.shape == (6, 3) and bool((d >= 0).all()) and float(d[0, 0]) == 0.0 and not d.requires_grad
    alpha, beta = model.encode(x)
    torch.testing.assert_close(model.posterior_mean(x), alpha / beta)


@pytest.mark.parametrize("likelihood", ["poisson", "exponential"])
def test_positive_likelihoods_see_a_rectified_dictionary_with_straight_through_gradient(
    likelihood: str,
) -> None:
    model, x, g = _model_and_batch(likelihood)
    with torch.no_grad():
        model.W[:, 0] = -1.0  # a whole atom negative
    out = model(x, generator=g)
    assert bool((out["x_hat"] >= 0).all())
    out["recon"].backward()
    # The clipped atom still receives the likelihood's gradient.
    assert float(model.W.grad[:, 0].abs().sum()) > 0


def test_score_correction_changes_gradient_not_loss() -> None:
    model, x, _ = _model_and_batch(boost=0, score_correction=True)
    out_c = model(x, generator=torch.Generator().manual_seed(5))
    out_c["loss"].backward()
    grad_c = model.head.weight.grad.clone()
    model.zero_grad()
    model.score_correction = False
    out = model(x, generator=torch.Generator().manual_seed(5))
    out["loss"].backward()
    torch.testing.assert_close(out_c["loss"], out["loss"])
    torch.testing.assert_close(out_c["z"], out["z"])
    assert not torch.allclose(grad_c, model.head.weight.grad)


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (-torch.rand(4, 6, dtype=torch.float64), "negative"),
        (torch.full((4, 6), float("nan"), dtype=torch.float64), "NaN"),
        (torch.rand(4, 5, dtype=torch.float64), r"\(batch, 6\)"),
        (torch.rand(6, dtype=torch.float64), r"\(batch, 6\)"),
    ],
)
def test_bad_input_raises_data_error(x: torch.Tensor, match: str) -> None:
    model, _, _ = _model_and_batch()
    with pytest.raises(DataError, match=match):
        model(x)
    with pytest.raises(DataError, match=match):
        model.posterior_mean(x)


def test_bad_configuration() -> None:
    with pytest.raises(DataError, match="rank 11 is larger"):
        VAENMF(10, 11)
    with pytest.raises(DataError, match="rank must be a positive integer"):
        VAENMF(10, 0)
    with pytest.raises(ConfigError, match=r"unknown likelihood 'laplace'.*gaussian"):
        VAENMF(10, 4, likelihood="laplace")
    with pytest.raises(ConfigError, match="unknown sampler"):
        VAENMF(10, 4, sampler="exact")
    with pytest.raises(ConfigError, match="unknown input_transform"):
        VAENMF(10, 4, input_transform="sqrt")
    with pytest.raises(ConfigError, match="prior_shape must be finite and > 0"):
        VAENMF(10, 4, prior_shape=0.0)
    with pytest.raises(ConfigError, match="noise_var"):
        VAENMF(10, 4, noise_var=-1.0)
    with pytest.raises(ConfigError, match="score_correction"):
        VAENMF(10, 4, sampler="implicit", score_correction=True)
    with pytest.raises(DataError, match="boost"):
        VAENMF(10, 4, boost=-1)
    with pytest.raises(DataError, match=r"init_dictionary has shape \(4, 10\)"):
        VAENMF(10, 4, init_dictionary=torch.ones(4, 10))


def test_init_dictionary_and_data_scaled_reset() -> None:
    w0 = torch.rand(10, 4)
    model = VAENMF(10, 4, hidden=(8,), init_dictionary=w0)
    torch.testing.assert_close(model.W.detach(), w0)
    x = torch.rand(500, 10) * torch.linspace(0.1, 10.0, 10)
    model.reset_dictionary(x, generator=torch.Generator().manual_seed(0))
    w = model.W.detach()
    assert bool((w >= 0).all())
    # E[W z] under the prior (E z = alpha0 = 1) is about the per-feature data mean.
    ratio = (w.sum(1) / x.mean(0)).mean()
    assert 0.5 < float(ratio) < 1.5


@pytest.mark.parametrize("likelihood", ["gaussian", "poisson", "exponential"])
def test_loss_decreases_on_demo_speech(likelihood: str) -> None:
    """The paper's architecture (m = 257, 400-400, rank 40) on frames of the embedded demo speech corpus."""
    from vaenmf.data.matrix import MatrixDataModule
    from vaenmf.data.speech import SpeechDataModule

    # Two dictionary voices (no extra ones): the data the 10% decrease below was measured on.
    dm = SpeechDataModule(
        dict_speech_frames=1024,
        demo_speakers=4,
        demo_utts_per_speaker=2,
        demo_noise_seconds=5,
        demo_extra_dictionary_speakers=0,
    )
    dm.setup()
    X = dm.speech_dictionary_frames()
    torch.manual_seed(0)
    model = VAENMF(257, 40, likelihood=likelihood, noise_var=1.0)
    g = torch.Generator().manual_seed(0)
    model.reset_dictionary(X.T, generator=g)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    losses = []
    for _ in range(6):
        for batch in MatrixDataModule(X, batch_size=128).train_dataloader():
            optimizer.zero_grad()
            out = model(batch, generator=g)
            out["loss"].backward()
            optimizer.step()
            losses.append(out["loss"].item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-8:]) < np.mean(losses[:8]) - 0.1 * abs(np.mean(losses[:8]))
