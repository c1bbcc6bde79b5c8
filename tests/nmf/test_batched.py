"""Batched NMF: many problems at once give what each problem gives alone, ragged lengths included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaenmf.errors import ConfigError, DataError
from vaenmf.nmf import (
    beta_divergence,
    fit_activations,
    fit_activations_batched,
    init_factors,
    nmf,
    nmf_batched,
    nmf_iteration_,
    normalize_dictionary,
    update_h,
    update_w,
)
from vaenmf.nmf.batched import pad_problems

LENGTHS = (57, 80, 33, 80, 61)  # ragged, with a tie and a repeated maximum


def _problems(lengths=LENGTHS, m=12, r=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    out = []
    for b, n in enumerate(lengths):
        W = torch.rand(m, r, generator=g, dtype=dtype)
        H = torch.rand(r, n, generator=g, dtype=dtype) ** 2
        # Different scales per problem, so a mix-up of problems (or of their scales) cannot pass.
        out.append((b + 1.0) * (W @ H + 0.01 * torch.rand(m, n, generator=g, dtype=dtype)))
    return out


def _alone(X, rank, beta, n_iter, seed):
    res = nmf(X, rank, beta=beta, max_iter=n_iter, seed=seed, eval_every=0)
    return res.W, res.H


@pytest.mark.parametrize("beta", [0, 1, 2])
@pytest.mark.parametrize("chunk_size", [None, 2])
def test_batched_equals_one_at_a_time_with_ragged_lengths(beta, chunk_size):
    problems = _problems()
    res = nmf_batched(problems, 3, beta=beta, n_iter=40, seed=7, chunk_size=chunk_size)
    assert res.W.shape == (5, 12, 3) and res.H.shape == (5, 3, max(LENGTHS))
    assert res.lengths.tolist() == list(LENGTHS)
    for b, X in enumerate(problems):
        W, H = _alone(X, 3, beta, 40, 7)
        # float64: the only difference is the summation order of products over padded columns.
        torch.testing.assert_close(res.W[b], W, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(res.activations(b), H, rtol=1e-9, atol=1e-12)
        assert torch.all(res.H[b, :, LENGTHS[b] :] == 0)  # padding untouched
        assert res.losses[b].item() == pytest.approx(beta_divergence(X, W @ H, beta).item(), rel=1e-9)
    # 40 iterations changed the factors a lot: the comparison above is not between two initialisations.
    W0, _ = init_factors(problems[0], 3, seed=7)
    assert (res.W[0] - W0).abs().max() > 0.1 * W0.abs().max()


def test_batched_float32_tracks_one_at_a_time():
    problems = [p.float() for p in _problems()]
    res = nmf_batched(problems, 3, beta=2, n_iter=200, seed=1)
    for b, X in enumerate(problems):
        W, H = _alone(X, 3, 2, 200, 1)
        # float32 after 200 iterations: rounding differences grow but stay far below the factors' change.
        torch.testing.assert_close(res.W[b], W, rtol=2e-4, atol=2e-5 * W.abs().max().item())
        torch.testing.assert_close(res.activations(b), H, rtol=2e-4, atol=2e-5 * H.abs().max().item())


def test_initialisation_is_init_factors_of_each_problem_alone():
    problems = _problems()
    res = nmf_batched(problems, 3, n_iter=0, seed=[3, 4, 5, 6, 7])
    for b, X in enumerate(problems):
        W0, H0 = init_factors(X, 3, seed=3 + b)
        assert torch.equal(res.W[b], W0)
        assert torch.equal(res.activations(b), H0)


@pytest.mark.parametrize("beta", [1, 2])
def test_padding_counted_breaks_the_equality_and_the_mask_restores_it(beta):
    """What the tests above guard against: padded columns taking part in the updates.

    The padding here holds data (as a ``(B, m, n)`` tensor of recordings cut at ``lengths`` does): zero padding
    would hide a missing mask, because an H-first multiplicative update zeroes the activations of zero columns.
    """
    problems = _problems()
    X, mask = pad_problems(problems)
    width = X.shape[-1]
    filler = _problems(lengths=(width,) * len(problems), seed=1)
    for b, p in enumerate(problems):
        X[b, :, p.shape[1] :] = filler[b][:, p.shape[1] :]
    W = torch.stack([init_factors(p, 3, seed=0)[0] for p in problems])
    H = torch.stack([init_factors(f, 3, seed=0)[1] for f in filler])  # padded columns start like real ones
    for b, p in enumerate(problems):
        H[b, :, : p.shape[1]] = init_factors(p, 3, seed=0)[1]
    ref = [_alone(p, 3, beta, 30, 0) for p in problems]
    broken_W, broken_H = W.clone(), H.clone()
    masked_W, masked_H = W.clone(), H.clone()
    for _ in range(30):
        nmf_iteration_(X, broken_W, broken_H, beta=beta)  # no mask: the padding counts
        nmf_iteration_(X, masked_W, masked_H, beta=beta, mask=mask)
    short = [b for b, p in enumerate(problems) if p.shape[1] < width]
    worst = max((broken_W[b] - ref[b][0]).abs().max().item() / ref[b][0].abs().max().item() for b in short)
    assert worst > 1e-2
    for b, p in enumerate(problems):
        torch.testing.assert_close(masked_W[b], ref[b][0], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(masked_H[b, :, : p.shape[1]], ref[b][1], rtol=1e-9, atol=1e-12)
        assert torch.all(masked_H[b, :, p.shape[1] :] == 0)


@pytest.mark.parametrize("beta", [0, 1, 2])
def test_masked_updates_and_divergence_equal_the_unpadded_ones(beta):
    problems = _problems()
    X, mask = pad_problems(problems)
    W = torch.stack([init_factors(p, 3, seed=2)[0] for p in problems])
    H = torch.zeros(len(problems), 3, X.shape[-1], dtype=X.dtype)
    for b, p in enumerate(problems):
        H[b, :, : p.shape[1]] = init_factors(p, 3, seed=2)[1]
    H[:, :, -1] = 5.0  # garbage in the padding of the shorter problems (and a real value for the longest)
    H_new = update_h(X, W, H, beta, mask=mask)
    W_new = update_w(X, W, H_new, beta, mask=mask)
    per_matrix = beta_divergence(X, W_new @ H_new, beta, reduction="per_matrix", mask=mask)
    for b, p in enumerate(problems):
        n = p.shape[1]
        H_b = H[b, :, :n]
        h_ref = update_h(p, W[b], H_b, beta)
        w_ref = update_w(p, W[b], h_ref, beta)
        torch.testing.assert_close(H_new[b, :, :n], h_ref, rtol=1e-12, atol=1e-14)
        assert torch.all(H_new[b, :, n:] == 0)
        torch.testing.assert_close(W_new[b], w_ref, rtol=1e-10, atol=1e-14)
        expected = beta_divergence(p, w_ref @ h_ref, beta).item()
        assert per_matrix[b].item() == pytest.approx(expected, rel=1e-10)


def test_tensor_input_with_lengths_equals_list_input():
    problems = _problems()
    X, _ = pad_problems(problems)
    X[0, :, LENGTHS[0] :] = 99.0  # data beyond a problem's length is never read
    a = nmf_batched(X, 3, beta=1, n_iter=15, seed=0, lengths=list(LENGTHS))
    b = nmf_batched(problems, 3, beta=1, n_iter=15, seed=0)
    torch.testing.assert_close(a.W, b.W, rtol=0, atol=0)
    torch.testing.assert_close(a.H, b.H, rtol=0, atol=0)


@pytest.mark.parametrize("beta", [1, 2])
def test_fit_activations_batched_equals_fit_activations(beta):
    problems = _problems()
    dictionaries = [
        torch.rand(12, 3, generator=torch.Generator().manual_seed(b), dtype=torch.float64) for b in range(5)
    ]
    got = fit_activations_batched(problems, torch.stack(dictionaries), beta=beta, n_iter=60, chunk_size=3)
    for b, (X, W) in enumerate(zip(problems, dictionaries, strict=True)):
        H = fit_activations(X, W, beta=beta, n_iter=60)
        assert got[b].shape == (3, LENGTHS[b])
        torch.testing.assert_close(got[b], H, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("beta", [1, 2, 0.5])
@pytest.mark.parametrize("l1", [0.0, 0.3])
def test_fit_activations_equals_repeated_update_h_exactly(beta, l1):
    # fit_activations hoists the W-only products out of its loop: the numbers must not change at all.
    X = _problems()[1]
    W = torch.rand(12, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    H0 = torch.rand(3, X.shape[1], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    H = H0.clone()
    for _ in range(25):
        H = update_h(X, W, H, beta, l1=l1)
    assert torch.equal(fit_activations(X, W, beta=beta, n_iter=25, H0=H0, l1=l1), H)


def test_normalize_dictionary_is_batched():
    W = torch.rand(4, 12, 3, dtype=torch.float64) + 0.1
    H = torch.rand(4, 3, 20, dtype=torch.float64)
    Wn, Hn = normalize_dictionary(W, H)
    for b in range(4):
        w, h = normalize_dictionary(W[b], H[b])
        torch.testing.assert_close(Wn[b], w)
        torch.testing.assert_close(Hn[b], h)


def test_bad_input_is_one_clear_error():
    problems = _problems()
    with pytest.raises(DataError, match=r"X\[1\] has 11 rows"):
        nmf_batched([problems[0], problems[1][:11]], 3)
    negative = [problems[0], -problems[1]]
    with pytest.raises(DataError, match=r"X\[1\] contains .* negative"):
        nmf_batched(negative, 3)
    with pytest.raises(DataError, match=r"rank 40 is larger .* X\[0\]"):
        nmf_batched(problems, 40)
    X, _ = pad_problems(problems)
    with pytest.raises(DataError, match=r"lengths\[2\] = 81 is outside \[1, 80\]"):
        nmf_batched(X, 3, lengths=[10, 10, 81, 10, 10])
    with pytest.raises(DataError, match="lengths has 2 entries for 5 problems"):
        nmf_batched(X, 3, lengths=[10, 10])
    with pytest.raises(DataError, match="seed has 2 entries"):
        nmf_batched(problems, 3, seed=[1, 2])
    with pytest.raises(DataError, match=r"\(B, m, n\) batch"):
        nmf_batched(problems[0], 3)
    with pytest.raises(DataError, match="empty batch"):
        nmf_batched([], 3)
    with pytest.raises(DataError, match=r"W0\[0\] has shape"):
        nmf_batched(problems, 3, W0=[torch.ones(12, 2)] * 5, H0=[torch.ones(3, 80)] * 5)
    with pytest.raises(DataError, match=r"W\[1\] has shape"):
        fit_activations_batched(problems[:2], [torch.ones(12, 3), torch.ones(12, 4)])
    with pytest.raises(ConfigError, match="chunk_size"):
        nmf_batched(problems, 3, chunk_size=0)
    with pytest.raises(ConfigError, match="beta"):
        nmf_batched(problems, 3, beta="kl")


def test_numpy_problems_and_custom_initial_factors():
    problems = [p.numpy() for p in _problems()]
    W0 = [np.full((12, 3), 0.5) for _ in problems]
    H0 = [np.full((3, 80), 0.5) for _ in problems]  # wider than the short problems: cut to each length
    res = nmf_batched(problems, 3, beta=2, n_iter=10, W0=W0, H0=H0)
    for b, X in enumerate(problems):
        ref = nmf(
            X, 3, beta=2, max_iter=10, W0=torch.from_numpy(W0[b]), H0=torch.from_numpy(H0[b][:, : X.shape[1]])
        )
        torch.testing.assert_close(res.W[b], ref.W, rtol=1e-9, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("beta", [1, 2])
def test_cuda_equals_cpu(beta):
    problems = [p.float() for p in _problems()]
    cpu = nmf_batched(problems, 3, beta=beta, n_iter=50, seed=0)
    gpu = nmf_batched(problems, 3, beta=beta, n_iter=50, seed=0, device="cuda")
    assert gpu.W.device.type == "cuda"
    torch.testing.assert_close(gpu.W.cpu(), cpu.W, rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(gpu.H.cpu(), cpu.H, rtol=1e-3, atol=1e-5)
    H = fit_activations_batched(problems, gpu.W, beta=beta, n_iter=20, device="cuda")
    assert H[0].device.type == "cuda"
