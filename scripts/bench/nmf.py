"""Benchmark our float32 CPU multiplicative-update NMF against scikit-learn and torchnmf, and our public entry point
against our own update loop.

Every implementation factorises the same seeded nonnegative ``(m, n)`` float32 matrix from the same initial
factors, with the same Lee-Seung alternating updates (H first, then W, in our layout ``X ~ W @ H``), for
exactly ``--iters`` iterations, for beta = 1 (generalised KL) and beta = 2 (Euclidean). Reported per run:

* wall seconds, best of ``--repeats`` after one short warm-up run, the repeats interleaved round robin across
  the implementations (also the best process CPU seconds: on a shared machine the steadier measure for
  single-threaded runs; with several threads it also counts threads spinning at barriers);
* nominal GFLOP/s, counting ``8 m r n`` flops per iteration for every implementation and both betas (the four
  ``m x r x n`` products of a KL iteration; the Gram-matrix Euclidean iteration really needs about half of
  that, so its nominal rate over-counts the arithmetic done by a factor of about two);
* the final loss, computed for all implementations by ONE function: ``vaenmf.nmf.beta_divergence`` on the
  returned factors in float64 (for beta = 2 that is ``0.5 ||X - WH||_F^2``);
* the ratios peer time / our time and peer loss / our loss.

Implementations: ``ours`` is the update loop (``vaenmf.nmf.nmf`` from the given factors, no divergence
evaluated); ``public`` is the public entry point ``vaenmf.fit_dictionary(X, method="nmf", beta=...)``, seeded so
that its initialisation is the same factors (it returns the normalised dictionary only: its loss is that of
``ours``, and ``public_matches_loop`` says whether its dictionary is ours normalised); ``sklearn`` and
``torchnmf`` as below. ``public_over_loop`` is the public path's time over the loop's (the issue's target: within a
few percent).

The same run also measures the machine's float32 GEMM rate with ``torch.mm`` on the shapes an iteration uses,
``(m x r) @ (r x n)`` and ``(r x m) @ (m x n)``, and on a big square product, and reports our rate as a
fraction of each. Timings on a shared machine are noisy: compare the ratios measured within one run.

Layout mapping (so that the problem, the initial factors and the update order are the same everywhere):

* scikit-learn factorises ``X_s (n_samples, n_features) ~ W_s @ H_s`` and updates ``W_s`` first, so it is fed
  ``X_s = X.T`` with ``W_s = H0.T`` and ``H_s = W0.T`` (its first update is then our H update);
* torchnmf's ``NMF`` models ``V (N, C) ~ H_t @ W_t.T`` and updates ``W_t`` first, so it is fed ``V = X`` with
  ``W_t = H0.T`` and ``H_t = W0``; its ``fit`` gets ``tol=-inf`` because with ``tol=0`` it would stop at the
  first evaluation (every 10 iterations) where float32 rounding makes the loss tick up.

Usage::

    python scripts/bench/nmf.py --out outputs/bench/nmf.json --repeats 3
    python scripts/bench/nmf.py --repeats 5 --wait-idle 60 --shared   # on a shared machine
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402
    IdleGate,
    add_common_arguments,
    best_time,
    environment,
    finish_environment,
    interleaved_best,
    thread_limits,
    write_report,
)

import vaenmf  # noqa: E402
from vaenmf.nmf import beta_divergence, init_factors, nmf, normalize_dictionary  # noqa: E402

BETA_NAMES = {1: "kullback-leibler", 2: "frobenius"}
IMPLEMENTATIONS = ("ours", "public", "sklearn", "torchnmf")
#: Seed offset of the initial factors (make_problem): the public entry point is seeded with seed + INIT_OFFSET.
INIT_OFFSET = 1


def make_problem(m: int, n: int, rank: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded nonnegative float32 data ``X (m, n)`` (a rank-``rank`` product plus noise) and initial factors.

    The initial factors are ``vaenmf.nmf.init_factors`` (scikit-learn's ``init="random"`` scale) from ``seed + 1``.
    """
    rng = np.random.default_rng(seed)
    W_true = rng.gamma(0.5, 1.0, size=(m, rank))
    H_true = rng.gamma(0.5, 1.0, size=(rank, n))
    X = W_true @ H_true + 0.1 * np.abs(rng.standard_normal((m, n)))
    X = np.ascontiguousarray(X, dtype=np.float32)
    W0, H0 = init_factors(torch.from_numpy(X), rank, seed=seed + INIT_OFFSET)
    return X, W0.numpy().copy(), H0.numpy().copy()


def final_loss(
    X: np.ndarray, W: np.ndarray | torch.Tensor, H: np.ndarray | torch.Tensor, beta: float
) -> float:
    """The common loss: ``beta_divergence(X, W @ H)`` in float64 on factors in our layout."""
    Xd = torch.as_tensor(X).double()
    Wd = torch.as_tensor(W).double()
    Hd = torch.as_tensor(H).double()
    return float(beta_divergence(Xd, Wd @ Hd, beta))


def run_ours(X: np.ndarray, W0: np.ndarray, H0: np.ndarray, beta: float, iters: int) -> tuple:
    Xt = torch.from_numpy(X)
    res = nmf(
        Xt,
        W0.shape[1],
        beta=beta,
        max_iter=iters,
        W0=torch.from_numpy(W0),
        H0=torch.from_numpy(H0),
        eval_every=0,
    )
    if res.n_iter != iters:
        raise RuntimeError(f"ours ran {res.n_iter} iterations, expected {iters}")
    return res.W, res.H


def run_public(
    X: np.ndarray, W0: np.ndarray, H0: np.ndarray, beta: float, iters: int, seed: int = 0
) -> tuple:
    """``vaenmf.fit_dictionary`` on the float32 numpy matrix, seeded so that it starts from ``W0, H0``.

    Returns ``(W, None)``: the public entry point hands on the dictionary only (columns normalised).
    """
    W = vaenmf.fit_dictionary(
        X, method="nmf", rank=W0.shape[1], beta=beta, max_iter=iters, seed=seed + INIT_OFFSET
    )
    return W, None


def run_sklearn(X: np.ndarray, W0: np.ndarray, H0: np.ndarray, beta: float, iters: int) -> tuple:
    from sklearn.decomposition import NMF

    model = NMF(
        n_components=W0.shape[1],
        solver="mu",
        beta_loss=BETA_NAMES[int(beta)],
        init="custom",
        max_iter=iters,
        tol=0.0,
    )
    Xs = np.ascontiguousarray(X.T)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: we ask for exactly `iters` iterations
        Ws = model.fit_transform(Xs, W=np.ascontiguousarray(H0.T), H=np.ascontiguousarray(W0.T))
    if model.n_iter_ != iters:
        raise RuntimeError(f"sklearn ran {model.n_iter_} iterations, expected {iters}")
    if Ws.dtype != np.float32:
        raise RuntimeError(f"sklearn computed in {Ws.dtype}, expected float32")
    return model.components_.T, Ws.T  # our W (m, r), our H (r, n)


def run_torchnmf(X: np.ndarray, W0: np.ndarray, H0: np.ndarray, beta: float, iters: int) -> tuple:
    from torchnmf.nmf import NMF

    V = torch.from_numpy(X)
    model = NMF(W=torch.from_numpy(np.ascontiguousarray(H0.T)), H=torch.from_numpy(W0))
    if model.W.dtype != torch.float32 or model.H.dtype != torch.float32:
        raise RuntimeError("torchnmf parameters are not float32")
    done = model.fit(V, beta=beta, tol=float("-inf"), max_iter=iters)
    if done != iters:
        raise RuntimeError(f"torchnmf ran {done} iterations, expected {iters}")
    return model.H.detach(), model.W.detach().T  # our W (m, r), our H (r, n)


RUNNERS: dict[str, Callable] = {
    "ours": run_ours,
    "public": run_public,
    "sklearn": run_sklearn,
    "torchnmf": run_torchnmf,
}


def gemm_rates(
    m: int, n: int, rank: int, repeats: int, square: int = 2048, before: Callable[[], None] | None = None
) -> dict:
    """float32 ``torch.mm`` GFLOP/s on the iteration's shapes and a big square product (best of repeats)."""
    g = torch.Generator().manual_seed(0)
    shapes = {
        "WH (m x r)@(r x n)": ((m, rank), (rank, n)),
        "WtV (r x m)@(m x n)": ((rank, m), (m, n)),
        f"square ({square} x {square})@({square} x {square})": ((square, square), (square, square)),
    }
    rates = {}
    for name, (sa, sb) in shapes.items():
        a = torch.rand(*sa, generator=g)
        b = torch.rand(*sb, generator=g)
        out = torch.empty(sa[0], sb[1])
        flops = 2.0 * sa[0] * sa[1] * sb[1]
        probe, _ = best_time(lambda a=a, b=b, out=out: torch.mm(a, b, out=out), 1)
        inner = int(min(1000, max(1, 0.1 / max(probe.seconds, 1e-7))))  # about 0.1 s per batch

        def batch(a=a, b=b, out=out, inner=inner):
            for _ in range(inner):
                torch.mm(a, b, out=out)

        timing, _ = best_time(batch, max(3, repeats), warmup=batch, before=before)
        rates[name] = flops * inner / timing.seconds / 1e9
    names = list(rates)
    # The two iteration shapes do equal work, so their combined rate is the harmonic mean.
    rates["iteration shapes (harmonic mean)"] = 2.0 / (1.0 / rates[names[0]] + 1.0 / rates[names[1]])
    return rates


def nmf_environment(threads: int | None, shared: bool = False, note: str | None = None) -> dict:
    return environment(threads, shared=shared, note=note, libraries=("sklearn", "torchnmf"))


def benchmark(
    m: int,
    n: int,
    rank: int,
    iters: int,
    repeats: int,
    betas: Sequence[float],
    seed: int = 0,
    implementations: Sequence[str] = IMPLEMENTATIONS,
    gate: IdleGate | None = None,
) -> dict:
    """Time every implementation on the same problem; repeats are interleaved (round robin) across them so
    that a slow spell on a shared machine hits all of them, and each keeps its best wall and CPU time."""
    X, W0, H0 = make_problem(m, n, rank, seed)
    flops_per_iter = 8.0 * m * rank * n
    gemm = gemm_rates(m, n, rank, repeats, before=gate)
    results: dict = {}
    for beta in betas:
        runs = {
            name: (lambda name=name, beta=beta: _run(name, X, W0, H0, beta, iters, seed))
            for name in implementations
        }
        warmups = {
            name: (lambda name=name, beta=beta: _run(name, X, W0, H0, beta, min(iters, 5), seed))
            for name in implementations
        }
        timed = interleaved_best(runs, repeats, warmups=warmups, before=gate)
        W_loop, H_loop = timed["ours"][1]
        per_impl: dict = {}
        for name, (timing, (W, H)) in timed.items():
            row = {
                "seconds": timing.seconds,
                "cpu_seconds": timing.cpu_seconds,
                "gflops": flops_per_iter * iters / timing.seconds / 1e9,
            }
            if name == "public":
                # Same initial factors and updates as the loop: its dictionary is the loop's, normalised.
                expected = normalize_dictionary(torch.as_tensor(W_loop))[0].numpy()
                row["public_matches_loop"] = bool(np.allclose(W, expected, rtol=1e-5, atol=1e-7))
                row["final_loss"] = final_loss(X, W_loop, H_loop, beta)
            else:
                row["final_loss"] = final_loss(X, W, H, beta)
            per_impl[name] = row
        ours = per_impl["ours"]
        for row in per_impl.values():
            row["time_ratio_to_ours"] = row["seconds"] / ours["seconds"]
            row["cpu_time_ratio_to_ours"] = row["cpu_seconds"] / ours["cpu_seconds"]
            row["loss_ratio_to_ours"] = row["final_loss"] / ours["final_loss"]
        ours["fraction_of_gemm_rate"] = {k: ours["gflops"] / v for k, v in gemm.items()}
        entry = {
            "beta": float(beta),
            "initial_loss": final_loss(X, W0, H0, beta),
            "implementations": per_impl,
        }
        if "public" in per_impl:
            entry["public_over_loop"] = per_impl["public"]["seconds"] / ours["seconds"]
            entry["public_over_loop_cpu"] = per_impl["public"]["cpu_seconds"] / ours["cpu_seconds"]
        results[str(int(beta)) if float(beta).is_integer() else str(beta)] = entry
    return {"gemm_gflops": gemm, "results": results}


def _run(
    name: str, X: np.ndarray, W0: np.ndarray, H0: np.ndarray, beta: float, iters: int, seed: int
) -> tuple:
    if name == "public":
        return run_public(X, W0, H0, beta, iters, seed)
    return RUNNERS[name](X, W0, H0, beta, iters)


def targets(report: dict) -> dict:
    """The issues' targets, per beta: >= 2x faster than each peer at a loss within 0.1%, >= 60% of GEMM rate,
    and the public entry point within 5% of the loop's time."""
    out = {}
    for key, res in report["results"].items():
        impls = res["implementations"]
        ours = impls["ours"]
        row = {}
        for peer in (p for p in impls if p not in ("ours", "public")):
            row[f"2x_faster_than_{peer}"] = impls[peer]["time_ratio_to_ours"] >= 2.0
            row[f"loss_within_0.1%_of_{peer}"] = ours["final_loss"] <= impls[peer]["final_loss"] * (1 + 1e-3)
        for k, frac in ours["fraction_of_gemm_rate"].items():
            row[f"60%_of_gemm[{k}]"] = frac >= 0.6
        if "public_over_loop" in res:
            row["public_within_5%_of_loop"] = res["public_over_loop"] <= 1.05
        out[key] = row
    return out


def format_table(report: dict) -> str:
    gemm = report["gemm_gflops"]
    cfg = report["config"]
    lines = [
        f"NMF {cfg['m']}x{cfg['n']} rank {cfg['rank']}, {cfg['iters']} iterations, float32 CPU, "
        f"torch threads {report['environment']['torch_num_threads']}, best of {cfg['repeats']}",
        "float32 torch.mm GFLOP/s: " + ", ".join(f"{k}: {v:.1f}" for k, v in gemm.items()),
        f"{'beta':>4} {'impl':>9} {'seconds':>8} {'cpu s':>8} {'GFLOP/s*':>9} {'final loss':>13} "
        f"{'t/t_ours':>8} {'cpu/ours':>8} {'L/L_ours':>9}",
    ]
    for key, res in report["results"].items():
        for name, row in res["implementations"].items():
            lines.append(
                f"{key:>4} {name:>9} {row['seconds']:8.3f} {row['cpu_seconds']:8.3f} {row['gflops']:9.2f} "
                f"{row['final_loss']:13.6e} {row['time_ratio_to_ours']:8.2f} {row['cpu_time_ratio_to_ours']:8.2f} "
                f"{row['loss_ratio_to_ours']:9.6f}"
            )
        fracs = res["implementations"]["ours"]["fraction_of_gemm_rate"]
        lines.append("     ours / GEMM rate: " + ", ".join(f"{k}: {v:.0%}" for k, v in fracs.items()))
        if "public_over_loop" in res:
            lines.append(
                f"     public entry point / update loop: {res['public_over_loop']:.3f} wall, "
                f"{res['public_over_loop_cpu']:.3f} CPU"
            )
    lines.append("* nominal: 8*m*r*n flops per iteration for every implementation and beta")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(p, "outputs/bench/nmf.json")
    p.add_argument("--m", type=int, default=257)
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--rank", type=int, default=40)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--betas", type=float, nargs="+", default=[1.0, 2.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--impls", nargs="+", default=list(IMPLEMENTATIONS), choices=IMPLEMENTATIONS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    if "ours" not in args.impls:
        args.impls = ["ours", *args.impls]
    if args.device != "cpu":
        raise SystemExit("scripts/bench/nmf.py compares CPU implementations only (--device cpu)")
    gate = IdleGate(args.wait_idle)
    # Load every library's thread pools first: threadpool_limits only reaches libraries already loaded.
    import sklearn.decomposition  # noqa: F401
    import torchnmf.nmf  # noqa: F401

    with thread_limits(args.threads):  # None leaves numpy's BLAS as it is
        env = nmf_environment(args.threads, shared=args.shared, note=args.note)
        report = benchmark(
            args.m, args.n, args.rank, args.iters, args.repeats, args.betas, args.seed, args.impls, gate
        )
    env = finish_environment(env)
    env["idle_gate"] = gate.summary()
    report = {
        "config": {
            "m": args.m,
            "n": args.n,
            "rank": args.rank,
            "iters": args.iters,
            "repeats": args.repeats,
            "seed": args.seed,
            "dtype": "float32",
            "device": "cpu",
            "flops_per_iteration": 8 * args.m * args.rank * args.n,
            "flop_count": "nominal 8*m*r*n per iteration for every implementation and beta",
            "public_entry_point": "vaenmf.fit_dictionary(X, method='nmf', beta=beta, rank, max_iter, seed)",
        },
        "environment": env,
        **report,
    }
    report["targets"] = targets(report)
    write_report(args.out, report)
    if not args.quiet:
        print(format_table(report))
        print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
