import pytest
import torch

from vaenmf.errors import DataError
from vaenmf.nmf import (
    beta_divergence,
    fit_activations,
    init_factors,
    nmf,
    nmf_iteration_,
    normalize_dictionary,
    separate_mu,
    update_h,
    update_w,
    wiener_mask,
)


def _problem(m=30, n=80, r=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(m, r, generator=g, dtype=dtype)
    H = torch.rand(r, n, generator=g, dtype=dtype) ** 2
    X = W @ H + 0.01 * torch.rand(m, n, generator=g, dtype=dtype)
    return X, W, H


@pytest.mark.parametrize("beta", [0, 1, 2])
def test_each_update_never_increases_divergence_and_stays_nonnegative(beta):
    X, _, _ = _problem()
    W, H = init_factors(X, 5, seed=1)
    loss = beta_divergence(X, W @ H, beta).item()
    for _ in range(40):
        H = update_h(X, W, H, beta)
        after_h = beta_divergence(X, W @ H, beta).item()
        W = update_w(X, W, H, beta)
        after_w = beta_divergence(X, W @ H, beta).item()
        assert after_h <= loss * (1 + 1e-10)
        assert after_w <= after_h * (1 + 1e-10)
        assert (W >= 0).all() and (H >= 0).all()
        loss = after_w


@pytest.mark.parametrize("beta", [1, 2])
def test_fast_in_place_iteration_equals_reference_updates(beta):
    X, _, _ = _problem(n=300)
    W, H = init_factors(X, 5, seed=2)
    W_ref, H_ref = W.clone(), H.clone()
    for _ in range(5):
        H_ref = update_h(X, W_ref, H_ref, beta)
        W_ref = update_w(X, W_ref, H_ref, beta)
    for _ in range(5):
        if beta == 1:
            from vaenmf.nmf.updates import kl_iteration_

            kl_iteration_(X, W, H, chunk=64)  # several blocks, last one partial
        else:
            nmf_iteration_(X, W, H, beta)
    torch.testing.assert_close(W, W_ref, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(H, H_ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 64, 299, 300, 4096, None])
def test_kl_iteration_block_size_does_not_change_the_updates(chunk):
    # Single-column blocks, a partial last block, one exact block, a block larger than the data, the default.
    from vaenmf.nmf.updates import kl_iteration_

    X, _, _ = _problem(n=300)
    W, H = init_factors(X, 5, seed=4)
    W_ref, H_ref = W.clone(), H.clone()
    for _ in range(3):
        H_ref = update_h(X, W_ref, H_ref, 1)
        W_ref = update_w(X, W_ref, H_ref, 1)
        kl_iteration_(X, W, H, chunk=chunk)
    torch.testing.assert_close(W, W_ref, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(H, H_ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("beta", [1, 2])
def test_float32_fast_path_tracks_float64_reference(beta):
    X, _, _ = _problem(n=300)
    W0, H0 = init_factors(X, 5, seed=5)
    W_ref, H_ref = W0.clone(), H0.clone()
    for _ in range(30):
        H_ref = update_h(X, W_ref, H_ref, beta)
        W_ref = update_w(X, W_ref, H_ref, beta)
    res = nmf(X.float(), 5, beta=beta, max_iter=30, W0=W0.float(), H0=H0.float(), eval_every=0)
    loss32 = beta_divergence(X, res.W.double() @ res.H.double(), beta).item()
    loss64 = beta_divergence(X, W_ref @ H_ref, beta).item()
    assert loss32 == pytest.approx(loss64, rel=1e-4)


@pytest.mark.parametrize("beta", [1, 2])
def test_fixed_dictionary_activations_recover_known_h(beta):
    g = torch.Generator().manual_seed(3)
    W = torch.rand(40, 4, generator=g, dtype=torch.float64)
    H_true = torch.rand(4, 50, generator=g, dtype=torch.float64) + 0.1
    X = W @ H_true
    H = fit_activations(X, W, beta=beta, n_iter=3000)
    torch.testing.assert_close(H, H_true, rtol=1e-3, atol=1e-3)


def test_fit_activations_is_batched():
    X, W, _ = _problem()
    Xb = torch.stack([X, 2 * X])
    Hb = fit_activations(Xb, W, n_iter=50)
    H0 = fit_activations(X, W, n_iter=50)
    assert Hb.shape == (2, 5, 80)
    torch.testing.assert_close(Hb[0], H0)


def test_nmf_fits_and_is_deterministic():
    X, _, _ = _problem()
    a = nmf(X, 5, beta=1, max_iter=100, seed=0)
    b = nmf(X, 5, beta=1, max_iter=100, seed=0)
    assert torch.equal(a.W, b.W) and torch.equal(a.H, b.H)
    assert a.losses[-1] < 0.05 * a.losses[0]
    assert all(x >= y - 1e-9 for x, y in zip(a.losses, a.losses[1:], strict=False))


def test_nmf_tolerance_stops_early():
    X, _, _ = _problem()
    res = nmf(X, 5, max_iter=5000, tol=1e-3)
    assert res.n_iter < 5000


def test_normalize_dictionary_keeps_product():
    X, W, H = _problem()
    Wn, Hn = normalize_dictionary(W, H)
    torch.testing.assert_close(Wn @ Hn, W @ H)
    torch.testing.assert_close(Wn.norm(dim=0), torch.ones(5, dtype=W.dtype))


def test_wiener_mask_and_separation():
    S = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    N = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    mask = wiener_mask(S, N)
    torch.testing.assert_close(mask, torch.tensor([[1.0, 0.0], [0.5, 0.5]]), atol=1e-6, rtol=0)
    # Speech from one dictionary, noise from another: separation must attribute each to its source.
    g = torch.Generator().manual_seed(0)
    Ws = torch.zeros(20, 2, dtype=torch.float64)
    Ws[:10] = torch.rand(10, 2, generator=g, dtype=torch.float64)
    Wn = torch.zeros(20, 2, dtype=torch.float64)
    Wn[10:] = torch.rand(10, 2, generator=g, dtype=torch.float64)
    speech = Ws @ torch.rand(2, 30, generator=g, dtype=torch.float64)
    noise = Wn @ torch.rand(2, 30, generator=g, dtype=torch.float64)
    est, H = separate_mu(speech + noise, Ws, Wn, n_iter=200)
    assert H.shape == (4, 30)
    torch.testing.assert_close(est, speech, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize(
    ("data", "rank", "match"),
    [
        (-torch.ones(5, 5), 2, "negative"),
        (torch.full((5, 5), float("nan")), 2, "NaN"),
        (torch.ones(5, 8), 6, "larger than min"),
        (torch.ones(5, 8), 0, "positive integer"),
    ],
)
def test_bad_input_gives_clear_error(data, rank, match):
    with pytest.raises(DataError, match=match):
        nmf(data, rank)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtypes_are_kept(dtype):
    X, _, _ = _problem(dtype=dtype)
    res = nmf(X, 3, max_iter=5)
    assert res.W.dtype == dtype and res.H.dtype == dtype
