"""DNMF reconstruction-basis updates: the gradient split against autograd, descent, nonnegativity."""

from __future__ import annotations

import pytest
import torch

from vaenmf.nmf import fit_activations, separate_with_activations
from vaenmf.nmf.dnmf import dnmf_gradient_terms, dnmf_objective, dnmf_speech_estimate, dnmf_update_


def _problem(m=30, n=120, r_s=5, r_n=4, seed=0, dtype=torch.float64):
    """Speech and noise that the analysis bases do not represent exactly, so the reconstruction bases can help."""
    g = torch.Generator().manual_seed(seed)
    W_s = torch.rand(m, r_s, generator=g, dtype=dtype)
    W_n = torch.rand(m, r_n, generator=g, dtype=dtype)
    S = (W_s @ torch.rand(r_s, n, generator=g, dtype=dtype) ** 2) * (
        0.5 + torch.rand(m, n, generator=g, dtype=dtype)
    )
    N = (W_n @ torch.rand(r_n, n, generator=g, dtype=dtype) ** 2) * (
        0.5 + torch.rand(m, n, generator=g, dtype=dtype)
    )
    M = S + N
    H = fit_activations(M, torch.cat([W_s, W_n], dim=1), n_iter=50)
    return S, M, W_s, W_n, H[:r_s], H[r_s:]


def _perturbed(W: torch.Tensor, seed: int) -> torch.Tensor:
    # A generic point away from Wb = W, so the test does not rest on a special starting point.
    g = torch.Generator().manual_seed(seed)
    return W * (0.5 + torch.rand(W.shape, generator=g, dtype=W.dtype))


def _autograd(S, M, Wb_s, Wb_n, H_s, H_n, beta, power=1.0):
    a, b = Wb_s.clone().requires_grad_(), Wb_n.clone().requires_grad_()
    return torch.autograd.grad(dnmf_objective(S, M, a, b, H_s, H_n, beta, power=power), [a, b])


@pytest.mark.parametrize("power", [1.0, 2.0, 1.5])
@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 1.5, 2.0])
def test_gradient_split_equals_autograd(beta, power):
    S, M, W_s, W_n, H_s, H_n = _problem()
    Wb_s, Wb_n = _perturbed(W_s, 1), _perturbed(W_n, 2)
    grad_s, grad_n = _autograd(S, M, Wb_s, Wb_n, H_s, H_n, beta, power)
    P_s, N_s, P_n, N_n = dnmf_gradient_terms(S, M, Wb_s, Wb_n, H_s, H_n, beta, power=power)
    for part in (P_s, N_s, P_n, N_n):
        assert (part >= 0).all()
    torch.testing.assert_close(P_s - N_s, grad_s, rtol=1e-10, atol=1e-10 * grad_s.abs().max().item())
    torch.testing.assert_close(P_n - N_n, grad_n, rtol=1e-10, atol=1e-10 * grad_n.abs().max().item())


@pytest.mark.parametrize("power", [1.0, 2.0])
@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_update_is_the_gradient_ratio_and_moves_against_the_gradient(beta, power):
    S, M, W_s, W_n, H_s, H_n = _problem(seed=3)
    Wb_s, Wb_n = _perturbed(W_s, 4), _perturbed(W_n, 5)
    old_s, old_n = Wb_s.clone(), Wb_n.clone()
    grad_s, _ = _autograd(S, M, Wb_s, Wb_n, H_s, H_n, beta, power)
    P_s, N_s, _, _ = dnmf_gradient_terms(S, M, Wb_s, Wb_n, H_s, H_n, beta, power=power)
    dnmf_update_(S, M, Wb_s, Wb_n, H_s, H_n, beta, power=power)
    # Speech first: Wb_s <- Wb_s * N_s / P_s, with grad = P_s - N_s.
    torch.testing.assert_close(Wb_s, old_s * N_s / P_s)
    # The noise update sees the new speech bases (sequential updates).
    _, grad_n = _autograd(S, M, Wb_s, old_n, H_s, H_n, beta, power)
    for new, old, grad in ((Wb_s, old_s, grad_s), (Wb_n, old_n, grad_n)):
        step = new - old
        big = grad.abs() > 1e-6 * grad.abs().max()
        # Every entry with a clear gradient moves against it (the sign would flip with a swapped ratio) ...
        assert (torch.sign(step[big]) == -torch.sign(grad[big])).all()
        # ... so the step is a descent direction.
        assert (step * grad).sum() < 0


def test_fixed_point_where_the_gradient_vanishes():
    # A basis vector that no frame activates: both gradient parts are zero and the vector must stay as it is
    # (not be zeroed by 0 / eps), because test mixtures may use it.
    S, M, W_s, W_n, H_s, H_n = _problem(seed=6)
    H_s = H_s.clone()
    H_s[2] = 0
    Wb_s, Wb_n = W_s.clone(), W_n.clone()
    for _ in range(5):
        dnmf_update_(S, M, Wb_s, Wb_n, H_s, H_n, 1.0)
    torch.testing.assert_close(Wb_s[:, 2], W_s[:, 2], rtol=0, atol=0)
    assert not torch.allclose(Wb_s[:, 0], W_s[:, 0])


@pytest.mark.parametrize("power", [1.0, 2.0])
@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_objective_never_increases_and_bases_stay_nonnegative(beta, power):
    S, M, W_s, W_n, H_s, H_n = _problem(seed=7)
    Wb_s, Wb_n = W_s.clone(), W_n.clone()
    values = [dnmf_objective(S, M, Wb_s, Wb_n, H_s, H_n, beta, power=power).item()]
    for _ in range(50):
        dnmf_update_(S, M, Wb_s, Wb_n, H_s, H_n, beta, power=power)
        values.append(dnmf_objective(S, M, Wb_s, Wb_n, H_s, H_n, beta, power=power).item())
        assert (Wb_s >= 0).all() and (Wb_n >= 0).all()
        assert torch.isfinite(Wb_s).all() and torch.isfinite(Wb_n).all()
    assert all(b <= a * (1 + 1e-12) for a, b in zip(values, values[1:], strict=False)), values
    # Measured: 7-8% below the objective at Wb = W after 50 updates on this problem (beta 0, 1, 2).
    assert values[-1] < 0.97 * values[0]


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_estimate_is_the_mask_the_separators_apply(power):
    S, M, W_s, W_n, H_s, H_n = _problem(seed=8)
    Wb_s, Wb_n = _perturbed(W_s, 9), _perturbed(W_n, 10)
    expected = separate_with_activations(M, Wb_s, Wb_n, H_s, H_n, power=power)
    torch.testing.assert_close(dnmf_speech_estimate(M, Wb_s, Wb_n, H_s, H_n, power=power), expected)


def test_batched_update_equals_one_problem_at_a_time():
    problems = [_problem(seed=s) for s in (11, 12)]
    stacked = [torch.stack(parts) for parts in zip(*problems, strict=True)]
    S, M, Wb_s, Wb_n, H_s, H_n = stacked
    Wb_s, Wb_n = Wb_s.clone(), Wb_n.clone()
    dnmf_update_(S, M, Wb_s, Wb_n, H_s, H_n, 1.0)
    for i, (S_i, M_i, W_s, W_n, H_s_i, H_n_i) in enumerate(problems):
        W_s, W_n = W_s.clone(), W_n.clone()
        dnmf_update_(S_i, M_i, W_s, W_n, H_s_i, H_n_i, 1.0)
        torch.testing.assert_close(Wb_s[i], W_s)
        torch.testing.assert_close(Wb_n[i], W_n)
