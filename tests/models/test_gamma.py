"""Tests of the reparameterised Gamma samplers and the Gamma-Gamma KL divergence."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Gamma, kl_divergence

from vaenmf.errors import ConfigError, DataError
from vaenmf.models.gamma import (
    AUTO_BOOST_SHAPE,
    kl_gamma,
    rsvi_boost,
    sample_gamma,
    sample_gamma_rsvi,
)

SAMPLERS = ("rsvi", "implicit")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_mean_and_variance_within_four_standard_errors(sampler: str) -> None:
    n = 200_000
    alpha = torch.tensor([0.3, 1.0, 5.0, 50.0], dtype=torch.float64).reshape(4, 1)
    beta = torch.tensor([0.5, 1.0, 4.0], dtype=torch.float64).reshape(1, 3)
    z = sample_gamma(alpha, beta, sampler=sampler, generator=_gen(0), sample_shape=(n,))
    assert z.shape == (n, 4, 3)
    assert bool((z >= 0).all()) and bool(torch.isfinite(z).all())
    mean = alpha / beta
    var = alpha / beta**2
    # SE of the sample mean: sqrt(var / n). SE of the sample variance: sqrt((mu4 - var^2 (n-3)/(n-1)) / n) with
    # the Gamma's fourth central moment mu4 = var^2 (3 + 6 / alpha) (excess kurtosis 6 / alpha).
    se_mean = torch.sqrt(var / n)
    mu4 = var**2 * (3.0 + 6.0 / alpha)
    se_var = torch.sqrt((mu4 - var**2 * (n - 3) / (n - 1)) / n)
    z_mean = (z.mean(0) - mean) / se_mean
    z_var = (z.var(0) - var) / se_var
    assert float(z_mean.abs().max()) < 4.0, z_mean
    assert float(z_var.abs().max()) < 4.0, z_var


def _per_sample_grads(sampler: str, alpha0: float, beta0: float, n: int, seed: int, **kw) -> tuple:
    """Per-sample d z / d alpha for n independent draws: each z_i depends on its own alpha_i only."""
    alpha = torch.full((n,), alpha0, dtype=torch.float64, requires_grad=True)
    if sampler == "rsvi":
        z = sample_gamma_rsvi(alpha, beta0, generator=_gen(seed), **kw)
    else:
        z = sample_gamma(alpha, beta0, sampler=sampler, generator=_gen(seed))
    (grad,) = torch.autograd.grad(z.sum(), alpha)
    return z.detach(), grad


def _within(samples: torch.Tensor, target: float, k: float = 4.0) -> tuple[bool, float]:
    n = samples.numel()
    se = float(samples.std()) / math.sqrt(n)
    score = (float(samples.mean()) - target) / se
    return abs(score) < k, score


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("alpha0", [0.3, 1.0, 5.0])
def test_reparameterised_gradients_match_analytic(sampler: str, alpha0: float) -> None:
    beta0 = 2.0
    z, dz = _per_sample_grads(sampler, alpha0, beta0, n=200_000, seed=1)
    # d E[z] / d alpha = 1 / beta; d E[z^2] / d alpha = (2 alpha + 1) / beta^2.
    ok1, s1 = _within(dz, 1.0 / beta0)
    ok2, s2 = _within(2.0 * z * dz, (2.0 * alpha0 + 1.0) / beta0**2)
    assert ok1, f"d E[z]/d alpha off by {s1:.2f} SE"
    assert ok2, f"d E[z^2]/d alpha off by {s2:.2f} SE"


def test_gradient_wrt_rate() -> None:
    beta = torch.full((100_000,), 2.0, dtype=torch.float64, requires_grad=True)
    z = sample_gamma_rsvi(3.0, beta, generator=_gen(2))
    (grad,) = torch.autograd.grad(z.sum(), beta)
    # z = z_1 / beta, so d z / d beta = -z / beta exactly, sample by sample.
    torch.testing.assert_close(grad, -z.detach() / 2.0)


def test_unboosted_rsvi_is_biased_and_the_correction_removes_it() -> None:
    """Plain RSVI (B = 0) at alpha = 1 misses the score term: d E[z^2]/d alpha ~ 2.915, not 3."""
    n = 400_000
    z, dz = _per_sample_grads("rsvi", 1.0, 1.0, n=n, seed=3, boost=0)
    ok, score = _within(2.0 * z * dz, 3.0)
    assert not ok and score < -5.0, score
    torch.testing.assert_close(float((2.0 * z * dz).mean()), 2.915, atol=0.04, rtol=0)

    alpha = torch.full((n,), 1.0, dtype=torch.float64, requires_grad=True)
    z, log_pi = sample_gamma_rsvi(alpha, 1.0, boost=0, generator=_gen(3), return_log_pi=True)
    f = z**2
    # Reparameterisation term + score-function correction term, per sample.
    (grad,) = torch.autograd.grad((f + f.detach() * log_pi).sum(), alpha)
    ok, score = _within(grad, 3.0)
    assert ok, f"corrected gradient off by {score:.2f} SE"


def test_log_pi_is_the_density_of_the_accepted_eps() -> None:
    """log_pi = log q(h(eps, a); a) + log |dh/d eps|, recomputed here from z alone (B = 0, so z = h / beta)."""
    alpha = torch.full((50_000,), 2.5, dtype=torch.float64)
    z, log_pi = sample_gamma_rsvi(alpha, 1.0, boost=0, generator=_gen(4), return_log_pi=True)
    # h = d (1 + c eps)^3, so 1 + c eps = (h / d)^(1/3) and |dh/d eps| = 3 d c (1 + c eps)^2.
    d = 2.5 - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    base = (z / d) ** (1.0 / 3.0)
    expected = Gamma(alpha, torch.ones_like(alpha)).log_prob(z) + torch.log(3.0 * d * c * base**2)
    torch.testing.assert_close(log_pi, expected)


def test_auto_boost_rule() -> None:
    alpha = torch.tensor([0.3, 1.0, 5.0, 7.5, 8.0, 50.0])
    assert rsvi_boost(alpha).tolist() == [8.0, 7.0, 3.0, 1.0, 0.0, 0.0]
    assert bool(((alpha + rsvi_boost(alpha)) >= AUTO_BOOST_SHAPE).all())
    # A fixed boost still lifts shapes below 1 (Marsaglia-Tsang needs a shape >= 1).
    assert rsvi_boost(alpha, 0).tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert rsvi_boost(alpha, 2).tolist() == [2.0] * 6
    for bad in (-1, 1.5, True):
        with pytest.raises(DataError, match="boost"):
            rsvi_boost(alpha, bad)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_tiny_shapes_give_finite_samples_and_gradients(sampler: str) -> None:
    alpha = torch.full((10_000,), 1e-3, requires_grad=True)
    z = sample_gamma(alpha, 1.0, sampler=sampler, generator=_gen(5))
    (grad,) = torch.autograd.grad(z.sum(), alpha)
    assert bool(torch.isfinite(z).all()) and bool((z >= 0).all())
    assert bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_float64_dtype_and_broadcasting(sampler: str) -> None:
    alpha = torch.rand(3, 1, dtype=torch.float64, generator=_gen(6)) + 0.5
    beta = torch.rand(1, 4, dtype=torch.float64, generator=_gen(7)) + 0.5
    z = sample_gamma(alpha, beta, sampler=sampler, generator=_gen(8))
    assert z.shape == (3, 4) and z.dtype == torch.float64
    z = sample_gamma(alpha, beta, sampler=sampler, generator=_gen(8), sample_shape=(5, 2))
    assert z.shape == (5, 2, 3, 4)
    z32 = sample_gamma(alpha.float(), 2.0, sampler=sampler, generator=_gen(8))
    assert z32.dtype == torch.float32 and z32.shape == (3, 1)
    # Python floats work too.
    assert sample_gamma(2.0, 3.0, sampler=sampler, generator=_gen(8)).shape == ()


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_generator_seed_same_samples(sampler: str) -> None:
    alpha = torch.linspace(0.2, 20.0, 64)
    a = sample_gamma(alpha, 1.5, sampler=sampler, generator=_gen(9))
    b = sample_gamma(alpha, 1.5, sampler=sampler, generator=_gen(9))
    c = sample_gamma(alpha, 1.5, sampler=sampler, generator=_gen(10))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize(
    ("alpha", "beta", "match"),
    [
        (torch.tensor([1.0, 0.0]), 1.0, "alpha must be > 0.*min 0"),
        (torch.tensor([1.0, -2.0]), 1.0, "alpha must be > 0.*min -2"),
        (1.0, torch.tensor([1.0, -0.5]), "beta must be > 0.*min -0.5"),
        (torch.tensor([1.0, float("nan")]), 1.0, "alpha contains 1 NaN"),
        (1.0, torch.tensor([float("inf")]), "beta contains 1 NaN or infinite"),
    ],
)
def test_bad_parameters_raise_data_error(sampler, alpha, beta, match) -> None:
    with pytest.raises(DataError, match=match):
        sample_gamma(alpha, beta, sampler=sampler)


def test_non_broadcastable_and_unknown_sampler() -> None:
    with pytest.raises(DataError, match="broadcast"):
        sample_gamma(torch.ones(3), torch.ones(4))
    with pytest.raises(ConfigError, match=r"unknown Gamma sampler 'exact'.*\['rsvi', 'implicit'\]"):
        sample_gamma(1.0, 1.0, sampler="exact")


def test_kl_matches_torch() -> None:
    g = _gen(11)
    a1, b1, a2, b2 = (torch.rand(1000, dtype=torch.float64, generator=g) * 10 + 0.05 for _ in range(4))
    ours = kl_gamma(a1, b1, a2, b2)
    ref = kl_divergence(Gamma(a1, b1), Gamma(a2, b2))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(kl_gamma(a1, b1, a1, b1), torch.zeros_like(a1), atol=1e-10, rtol=0)
    # The paper's eq. 8 mixes rate and scale in its last term; make sure we are not computing that.
    paper = (
        a1 * torch.log(b1)
        - a2 * torch.log(b2)
        + torch.lgamma(a2)
        - torch.lgamma(a1)
        + (torch.digamma(a1) - torch.log(b1)) * (a1 - a2)
        + a1 * (b1 / b2 - 1)
    )
    assert float((paper - ref).abs().max()) > 1.0


def test_kl_broadcasts_and_float32() -> None:
    a1 = torch.rand(3, 1, generator=_gen(12)) + 0.5
    b1 = torch.rand(1, 4, generator=_gen(13)) + 0.5
    out = kl_gamma(a1, b1, 1.0, 1.0)
    assert out.shape == (3, 4) and out.dtype == torch.float32
    assert bool((out >= -1e-6).all())


@pytest.mark.parametrize(
    ("a1", "b1", "a2", "b2"), [(0.5, 2.0, 1.0, 1.0), (3.0, 0.7, 0.8, 1.0), (20.0, 5.0, 1.0, 1.0)]
)
def test_kl_matches_monte_carlo(a1: float, b1: float, a2: float, b2: float) -> None:
    n = 200_000
    z = sample_gamma(
        torch.tensor(a1, dtype=torch.float64), b1, sampler="implicit", generator=_gen(14), sample_shape=(n,)
    )
    log_ratio = Gamma(torch.tensor(a1, dtype=torch.float64), b1).log_prob(z) - Gamma(
        torch.tensor(a2, dtype=torch.float64), b2
    ).log_prob(z)
    ok, score = _within(log_ratio, float(kl_gamma(a1, b1, a2, b2)))
    assert ok, f"KL off the Monte Carlo estimate by {score:.2f} SE"


def test_kl_rejects_bad_parameters() -> None:
    with pytest.raises(DataError, match="a2 must be > 0"):
        kl_gamma(1.0, 1.0, 0.0, 1.0)
    with pytest.raises(DataError, match="b1 contains"):
        kl_gamma(1.0, float("nan"), 1.0, 1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_cuda_generator_on_device(sampler: str) -> None:
    g = torch.Generator(device="cuda").manual_seed(0)
    alpha = torch.full((1000,), 0.5, device="cuda", requires_grad=True)
    z = sample_gamma(alpha, 2.0, sampler=sampler, generator=g)
    z.sum().backward()
    assert z.device.type == "cuda" and bool(torch.isfinite(alpha.grad).all())
