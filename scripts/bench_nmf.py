"""Benchmark our float32 CPU multiplicative-update NMF against scikit-learn and torchnmf.

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

    python scripts/bench_nmf.py --out outputs/bench/nmf.json --repeats 3
    python scripts/bench_nmf.py --repeats 5 --wait-idle 60   # on a shared machine: time quiet moments only
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from vaenmf.nmf import beta_divergence, init_factors, nmf

BETA_NAMES = {1: "kullback-leibler", 2: "frobenius"}
IMPLEMENTATIONS = ("ours", "sklearn", "torchnmf")


def make_problem(m: int, n: int, rank: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded nonnegative float32 data ``X (m, n)`` (a rank-``rank`` product plus noise) and initial factors.

    The initial factors are ``vaenmf.nmf.init_factors`` (scikit-learn's ``init="random"`` scale) from ``seed + 1``.
    """
    rng = np.random.default_rng(seed)
    W_true = rng.gamma(0.5, 1.0, size=(m, rank))
    H_true = rng.gamma(0.5, 1.0, size=(rank, n))
    X = W_true @ H_true + 0.1 * np.abs(rng.standard_normal((m, n)))
    X = np.ascontiguousarray(X, dtype=np.float32)
    W0, H0 = init_factors(torch.from_numpy(X), rank, seed=seed + 1)
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


RUNNERS: dict[str, Callable] = {"ours": run_ours, "sklearn": run_sklearn, "torchnmf": run_torchnmf}


def cpu_idle_fraction(interval: float = 0.25) -> float | None:
    """Fraction of all CPUs' time spent idle over ``interval`` seconds (Linux ``/proc/stat``; else None)."""

    def snapshot() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    try:
        idle0, total0 = snapshot()
        time.sleep(interval)
        idle1, total1 = snapshot()
    except (OSError, ValueError, IndexError):
        return None
    return (idle1 - idle0) / max(1, total1 - total0)


class IdleGate:
    """Before each timed call, wait up to ``max_wait`` seconds for the machine to be mostly idle.

    On a shared machine other processes make the timings noisy; waiting for a quiet moment (idle fraction
    above ``threshold``) before each repeat makes the best-of-repeats time more reproducible. Counts how many
    timed calls started quiet and how many gave up waiting.
    """

    def __init__(self, max_wait: float = 0.0, threshold: float = 0.8):
        self.max_wait, self.threshold = float(max_wait), float(threshold)
        self.quiet_starts = self.busy_starts = 0

    def __call__(self) -> None:
        if self.max_wait <= 0:
            return
        deadline = time.perf_counter() + self.max_wait
        while True:
            idle = cpu_idle_fraction()
            if idle is None or idle >= self.threshold:
                self.quiet_starts += 1
                return
            if time.perf_counter() >= deadline:
                self.busy_starts += 1
                return

    def summary(self) -> dict:
        return {
            "max_wait_s": self.max_wait,
            "idle_threshold": self.threshold,
            "timed_calls_started_quiet": self.quiet_starts,
            "timed_calls_started_busy": self.busy_starts,
        }


def best_time(
    fn: Callable[[], object],
    repeats: int,
    warmup: Callable[[], object] | None = None,
    before: Callable[[], None] | None = None,
) -> tuple:
    """Best wall time and best process CPU time of ``repeats`` calls (after one warm-up call), last result.

    ``before`` (e.g. an :class:`IdleGate`) runs before every timed call, outside the timing.
    """
    if warmup is not None:
        warmup()
    best, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(max(1, int(repeats))):
        if before is not None:
            before()
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best, best_cpu, result


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
        torch.mm(a, b, out=out)
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        inner = int(min(1000, max(1, 0.1 / max(time.perf_counter() - t0, 1e-7))))  # about 0.1 s per batch

        def batch(a=a, b=b, out=out, inner=inner):
            for _ in range(inner):
                torch.mm(a, b, out=out)

        seconds, _, _ = best_time(batch, max(3, repeats), warmup=batch, before=before)
        rates[name] = flops * inner / seconds / 1e9
    names = list(rates)
    # The two iteration shapes do equal work, so their combined rate is the harmonic mean.
    rates["iteration shapes (harmonic mean)"] = 2.0 / (1.0 / rates[names[0]] + 1.0 / rates[names[1]])
    return rates


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(threads: int | None) -> dict:
    import sklearn
    import torchnmf
    from threadpoolctl import threadpool_info

    pools = [
        {k: info.get(k) for k in ("user_api", "internal_api", "num_threads", "version", "filepath")}
        for info in threadpool_info()
    ]
    return {
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "torchnmf": getattr(torchnmf, "__version__", "unknown"),
        "torch_num_threads": torch.get_num_threads(),
        "threads_requested": threads,
        "threadpoolctl": pools,
        "env": {
            k: os.environ.get(k)
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE")
        },
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


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
        for name in implementations:  # warm-up: imports, allocator, thread pools
            RUNNERS[name](X, W0, H0, beta, min(iters, 5))
        best = {name: [float("inf"), float("inf"), None] for name in implementations}
        for _ in range(max(1, int(repeats))):
            for name in implementations:
                seconds, cpu_seconds, factors = best_time(
                    lambda name=name, beta=beta: RUNNERS[name](X, W0, H0, beta, iters), 1, before=gate
                )
                row = best[name]
                row[0], row[1], row[2] = min(row[0], seconds), min(row[1], cpu_seconds), factors
        per_impl: dict = {}
        for name, (seconds, cpu_seconds, (W, H)) in best.items():
            per_impl[name] = {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "gflops": flops_per_iter * iters / seconds / 1e9,
                "final_loss": final_loss(X, W, H, beta),
            }
        ours = per_impl["ours"]
        for row in per_impl.values():
            row["time_ratio_to_ours"] = row["seconds"] / ours["seconds"]
            row["cpu_time_ratio_to_ours"] = row["cpu_seconds"] / ours["cpu_seconds"]
            row["loss_ratio_to_ours"] = row["final_loss"] / ours["final_loss"]
        ours["fraction_of_gemm_rate"] = {k: ours["gflops"] / v for k, v in gemm.items()}
        results[str(int(beta)) if float(beta).is_integer() else str(beta)] = {
            "beta": float(beta),
            "initial_loss": final_loss(X, W0, H0, beta),
            "implementations": per_impl,
        }
    return {"gemm_gflops": gemm, "results": results}


def targets(report: dict) -> dict:
    """The issue's targets, per beta: >= 2x faster than each peer at a loss within 0.1%, >= 60% of GEMM rate."""
    out = {}
    for key, res in report["results"].items():
        impls = res["implementations"]
        ours = impls["ours"]
        row = {}
        for peer in (p for p in impls if p != "ours"):
            row[f"2x_faster_than_{peer}"] = impls[peer]["time_ratio_to_ours"] >= 2.0
            row[f"loss_within_0.1%_of_{peer}"] = ours["final_loss"] <= impls[peer]["final_loss"] * (1 + 1e-3)
        for k, frac in ours["fraction_of_gemm_rate"].items():
            row[f"60%_of_gemm[{k}]"] = frac >= 0.6
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
    lines.append("* nominal: 8*m*r*n flops per iteration for every implementation and beta")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("outputs/bench/nmf.json"))
    p.add_argument("--m", type=int, default=257)
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--rank", type=int, default=40)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch and BLAS threads for this run (default: leave the libraries' own setting)",
    )
    p.add_argument("--betas", type=float, nargs="+", default=[1.0, 2.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--impls", nargs="+", default=list(IMPLEMENTATIONS), choices=IMPLEMENTATIONS)
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        help="before each timed call wait up to this many seconds for the CPUs to be >= 80%% idle (default 0)",
    )
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    if "ours" not in args.impls:
        args.impls = ["ours", *args.impls]
    previous_threads = torch.get_num_threads()
    gate = IdleGate(args.wait_idle)
    # Load every library's thread pools first: threadpool_limits only reaches libraries already loaded.
    import sklearn.decomposition  # noqa: F401
    import torchnmf.nmf  # noqa: F401
    from threadpoolctl import threadpool_limits

    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        with threadpool_limits(limits=args.threads):  # None leaves numpy's BLAS as it is
            env = environment(args.threads)
            report = benchmark(
                args.m, args.n, args.rank, args.iters, args.repeats, args.betas, args.seed, args.impls, gate
            )
    finally:
        torch.set_num_threads(previous_threads)
    env["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
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
        },
        "environment": env,
        **report,
    }
    report["targets"] = targets(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    if not args.quiet:
        print(format_table(report))
        print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
