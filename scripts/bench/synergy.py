"""Benchmark the synergy problems (Figure 2) solved all at once against one problem at a time.

Writes ``outputs/bench/synergy.json`` with:

* ``nmf`` (a): ``--nmf-problems`` (1404 = 27 subjects x 52 movements) seeded EMG-like problems of 10 x 2000,
  rank 4, 500 Euclidean multiplicative-update iterations: ``vaenmf.nmf.nmf_batched`` (all problems in one
  batched computation) against a loop of scikit-learn ``NMF(solver="mu", beta_loss="frobenius", init="custom")``
  on the same problems from the same initial factors (``init_factors(X_b, 4, seed)``, what ``nmf_batched``
  uses), and against our own one-at-a-time ``nmf``. The loops are timed on a fixed, evenly spaced subset of
  ``--sklearn-subset`` problems and scaled to all problems (stated in ``loop_timing``). The final losses are
  compared on that subset (float64 ``0.5 ||X - WH||^2``): the run fails if they differ by more than 0.5%. Also
  the time of the batched products alone (what no implementation on these kernels can beat), and the batched
  fixed-W activations (the reconstructions).
* ``vae_nmf`` (b): ``--vae-problems`` (324 = 27 x 12, DB1 exercise 1) problems of 10 channels and about 3500
  frames (lengths drawn in [0.85, 1.15] x 3500, so the stacks are ragged), rank 4, the synergy task's model
  (``conf/dictionary/vae_nmf.yaml`` with ``conf/method/in_task/synergy_vae_nmf.yaml``: 150 epochs, batch 128, Adam 1e-3 / 5e-4, noise_var 0.05, hidden 400,
  400), each scaled to unit mean square as the task does: ``fit_vae_nmf_stack`` against today's loop (the
  synergy task's own per-movement fit, ``train_dictionary_system`` under the configured Trainer). Both are run
  for a few epochs only; the per-epoch and fixed costs are measured (the stack's from per-epoch timestamps, the
  slowest worker process's with ``--vae-workers`` above 1; the loop's from two epoch counts, timed before and
  after the batched runs, the faster round kept) and extrapolated to 150 epochs (fixed costs once; the loop
  from ``--loop-problems`` to all problems), marked ``extrapolated``.
* ``figure2`` (c): the training and reconstruction (fixed-W activations) time of Figure 2 on all 27 x 52
  problems for NMF and VAE-NMF, batched and today's loop, extrapolated from (a) and (b) and from a measured
  per-movement cost of today's NMF path (also marked).
* ``scaling``: wall time against the number of problems (1, 27, 324, 1404), measured where cheap, else
  extrapolated (marked per row).

Timing: :mod:`bench_common` (best of ``--repeats`` after a warm-up for (a), interleaved round robin; one run of
the long VAE-NMF measurements). One torch and BLAS thread by default (``--threads``), as the synergy task runs.
Report ratios: absolute times drift with the machine's load; on a shared machine pass ``--shared``.

Usage::

    python scripts/bench/synergy.py --out outputs/bench/synergy.json --shared
    python scripts/bench/synergy.py --device cuda --out outputs/bench/synergy_cuda.json
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402
    IdleGate,
    add_common_arguments,
    best_time,
    cuda_unavailable_report,
    environment,
    finish_environment,
    interleaved_best,
    synchronizer,
    thread_limits,
    write_report,
)

from vaenmf.models.vae_nmf_stack import (  # noqa: E402
    CPU_CHUNK,
    default_chunk_size,
    fit_vae_nmf_stack,
    retain_freed_memory,
)
from vaenmf.nmf import (  # noqa: E402
    beta_divergence,
    fit_activations,
    fit_activations_batched,
    init_factors,
    nmf,
    nmf_batched,
)
from vaenmf.nmf.batched import _chunks, pad_problems  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LOSS_TOLERANCE = 0.005  # the "final losses within 0.5%"
TARGET_NMF, TARGET_VAE = 20.0, 5.0


# ---------------------------------------------------------------------------------------------- data
def emg_problem(seed: int, m: int, n: int, rank: int = 4) -> np.ndarray:
    """Seeded EMG-like float32 data ``(m, n)``: nonnegative synergies times smoothed Gamma activations, with
    multiplicative noise (the structure of the demo EMG corpus), at roughly unit scale."""
    rng = np.random.default_rng(seed)
    W = rng.gamma(1.0, 1.0, size=(m, rank))
    W /= np.linalg.norm(W, axis=0, keepdims=True)
    H = rng.gamma(0.5, 1.0, size=(rank, n + 19))
    H = np.stack([np.convolve(h, np.ones(20) / 20, mode="valid") for h in H])  # 200 ms at 100 Hz
    X = (W @ H) * rng.lognormal(0.0, 0.2, size=(m, n))
    return np.ascontiguousarray(X, dtype=np.float32)


def _sklearn_fit(
    X: torch.Tensor, W0: torch.Tensor, H0: torch.Tensor, iters: int
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's MU in our layout (``X_s = X^T``, ``W_s = H0^T``, ``H_s = W0^T``: its first update is our H
    update, as in scripts/bench/nmf.py); returns our W ``(m, r)`` and H ``(r, n)``."""
    from sklearn.decomposition import NMF

    model = NMF(
        n_components=W0.shape[1], solver="mu", beta_loss="frobenius", init="custom", max_iter=iters, tol=0.0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: exactly `iters` iterations are asked for
        Ws = model.fit_transform(
            np.ascontiguousarray(X.numpy().T),
            W=np.ascontiguousarray(H0.numpy().T),
            H=np.ascontiguousarray(W0.numpy().T),
        )
    if model.n_iter_ != iters or Ws.dtype != np.float32:
        raise RuntimeError(
            f"sklearn ran {model.n_iter_} iterations in {Ws.dtype}; expected {iters} in float32"
        )
    return model.components_.T, Ws.T


def _loss(X: torch.Tensor, W: Any, H: Any) -> float:
    Xd = torch.as_tensor(X).double().cpu()
    return float(
        beta_divergence(Xd, torch.as_tensor(W).double().cpu() @ torch.as_tensor(H).double().cpu(), 2)
    )


def _subset(count: int, size: int) -> list[int]:
    return sorted({int(round(v)) for v in np.linspace(0, count - 1, max(1, min(size, count)))})


# ---------------------------------------------------------------------------------------------- (a) NMF
def _products_only(
    problems: Sequence[torch.Tensor], rank: int, iters: int, device: str
) -> Callable[[], None]:
    """The batched products of ``iters`` Euclidean iterations alone (same chunks as nmf_batched, buffers
    allocated once), as a function to time: a floor for any implementation built on these kernels."""
    widths = [int(p.shape[1]) for p in problems]
    m = int(problems[0].shape[0])
    order = sorted(range(len(problems)), key=lambda b: -widths[b])
    chunk_size = len(problems) if torch.device(device).type != "cpu" else None
    chunks = []
    for chunk in _chunks(order, widths, m, chunk_size):
        X, _ = pad_problems([problems[b].to(device) for b in chunk])
        B, n = X.shape[0], X.shape[-1]
        W, H = torch.rand(B, m, rank, device=device), torch.rand(B, rank, n, device=device)
        bufs = [torch.empty(B, rank, n, device=device), torch.empty(B, rank, n, device=device)]
        bufs += [torch.empty(B, rank, rank, device=device) for _ in range(2)]
        bufs += [torch.empty(B, m, rank, device=device) for _ in range(2)]
        chunks.append((X, W, H, bufs))

    def run() -> None:
        for X, W, H, (A, D, G, S, P, Q) in chunks:
            Wt, Ht = W.transpose(1, 2), H.transpose(1, 2)
            for _ in range(iters):
                torch.bmm(Wt, X, out=A)
                torch.bmm(torch.bmm(Wt, W, out=G), H, out=D)
                torch.bmm(W, torch.bmm(H, Ht, out=S), out=Q)
                torch.bmm(X, Ht, out=P)

    return run


def nmf_part(args: argparse.Namespace, gate: IdleGate) -> dict[str, Any]:
    B, m, n, rank, iters, device = args.nmf_problems, args.m, args.n, args.rank, args.nmf_iters, args.device
    problems = [torch.from_numpy(emg_problem(args.seed * 1_000_003 + b, m, n, rank)) for b in range(B)]
    subset = _subset(B, args.sklearn_subset)
    inits = {b: init_factors(problems[b], rank, seed=args.seed) for b in subset}
    sub_problems = [problems[b] for b in subset]

    def batched() -> Any:
        return nmf_batched(problems, rank, beta=2, n_iter=iters, seed=args.seed, device=device)

    def sklearn_loop() -> list:
        return [_sklearn_fit(problems[b], *inits[b], iters) for b in subset]

    def ours_loop() -> list:
        return [
            nmf(p, rank, beta=2, max_iter=iters, seed=args.seed, eval_every=0, device=device)
            for p in sub_problems
        ]

    products = _products_only(problems, rank, iters, device)
    timed = interleaved_best(
        {
            "ours_batched": batched,
            "sklearn_loop": sklearn_loop,
            "ours_loop": ours_loop,
            "products_only": products,
        },
        args.repeats,
        warmups={
            "products_only": _products_only(problems[: min(B, 64)], rank, 3, device),
            "ours_batched": lambda: nmf_batched(
                problems[: min(B, 64)], rank, beta=2, n_iter=3, device=device
            ),
            "sklearn_loop": lambda: _sklearn_fit(problems[0], *init_factors(problems[0], rank, seed=0), 3),
            "ours_loop": lambda: nmf(problems[0], rank, beta=2, max_iter=3, eval_every=0, device=device),
        },
        before=gate,
        device=device,
    )
    res = timed["ours_batched"][1]
    losses = {"ours_batched": [], "sklearn_loop": [], "ours_loop": []}
    for i, b in enumerate(subset):
        losses["ours_batched"].append(_loss(problems[b], res.W[b], res.activations(b)))
        W_s, H_s = timed["sklearn_loop"][1][i]
        losses["sklearn_loop"].append(_loss(problems[b], W_s, H_s))
        fit = timed["ours_loop"][1][i]
        losses["ours_loop"].append(_loss(problems[b], fit.W, fit.H))
    ours_l, sk_l = np.array(losses["ours_batched"]), np.array(losses["sklearn_loop"])
    rel = np.abs(ours_l - sk_l) / sk_l
    initial = np.array([_loss(problems[b], *inits[b]) for b in subset])

    scale = B / len(subset)
    products_timing = timed.pop("products_only")[0]
    rows: dict[str, Any] = {}
    for name, (timing, _) in timed.items():
        factor = 1.0 if name == "ours_batched" else scale
        rows[name] = {
            "seconds": timing.seconds * factor,
            "cpu_seconds": timing.cpu_seconds * factor,
            "measured_seconds": timing.seconds,
            "problems_timed": B if name == "ours_batched" else len(subset),
            "scaled_to_all_problems": name != "ours_batched",
            "per_problem_iteration_us": timing.seconds
            / (B if name == "ours_batched" else len(subset))
            / iters
            * 1e6,
        }
    ours = rows["ours_batched"]
    for row in rows.values():
        row["time_ratio_to_ours_batched"] = row["seconds"] / ours["seconds"]
        row["cpu_time_ratio_to_ours_batched"] = row["cpu_seconds"] / ours["cpu_seconds"]

    activation_timing, _ = best_time(
        lambda: fit_activations_batched(problems, res.W, beta=2, n_iter=iters, device=device),
        1,
        warmup=lambda: fit_activations_batched(problems[:8], res.W[:8], beta=2, n_iter=2, device=device),
        device=device,
    )
    return {
        "config": {
            "problems": B,
            "m": m,
            "n": n,
            "rank": rank,
            "iterations": iters,
            "beta": 2,
            "dtype": "float32",
            "device": device,
            "init": "vaenmf.nmf.init_factors(X_b, rank, seed) for every implementation",
        },
        "loop_timing": (
            f"the loops (sklearn_loop, ours_loop) were timed on {len(subset)} of the {B} problems (every "
            f"{B / len(subset):.1f}th, fixed) and scaled by {scale:.2f}; ours_batched solved all {B} problems"
        ),
        "implementations": rows,
        "speedup_vs_sklearn": rows["sklearn_loop"]["seconds"] / ours["seconds"],
        "speedup_vs_sklearn_cpu": rows["sklearn_loop"]["cpu_seconds"] / ours["cpu_seconds"],
        "speedup_vs_ours_loop": rows["ours_loop"]["seconds"] / ours["seconds"],
        "losses": {
            "problems_compared": len(subset),
            "max_relative_difference_ours_batched_vs_sklearn": float(rel.max()),
            "mean_relative_difference_ours_batched_vs_sklearn": float(rel.mean()),
            "max_relative_difference_ours_batched_vs_ours_loop": float(
                np.max(np.abs(ours_l - np.array(losses["ours_loop"])) / np.array(losses["ours_loop"]))
            ),
            "mean_final_over_initial": float(np.mean(ours_l / initial)),
            "within_0.5%": bool(rel.max() <= LOSS_TOLERANCE),
        },
        "products_only": {
            "seconds": products_timing.seconds,
            "cpu_seconds": products_timing.cpu_seconds,
            "share_of_ours_batched": products_timing.seconds / ours["seconds"],
            "share_of_ours_batched_cpu": products_timing.cpu_seconds / ours["cpu_seconds"],
            "max_speedup_vs_sklearn_with_these_products": rows["sklearn_loop"]["seconds"]
            / products_timing.seconds,
            "what": "the 6 batched products of each iteration (W^T X, W^T W, (W^T W) H, H H^T, W (H H^T), X H^T) "
            "alone, on the same chunks, timed with the others: a floor for any implementation on these kernels",
        },
        "activations_batched": {
            "seconds": activation_timing.seconds,
            "cpu_seconds": activation_timing.cpu_seconds,
            "per_problem_iteration_us": activation_timing.seconds / B / iters * 1e6,
            "what": f"fit_activations_batched, {iters} H updates with each problem's W fixed (the reconstructions)",
        },
        "_problems": problems,  # for the scaling rows (removed before writing)
        "_batched": res,
    }


# ---------------------------------------------------------------------------------------------- (b) VAE-NMF
def _stack_timing(
    problems: Sequence[torch.Tensor],
    epochs: int,
    args: argparse.Namespace,
    hidden: Sequence[int],
    workers: int = 1,
) -> dict[str, float]:
    """One ``fit_vae_nmf_stack`` run of ``epochs`` (>= 2) epochs and its costs: fixed (set-up) and per epoch.

    Every stack reports its set-up and per-epoch times (in the process that trained it); the per-epoch cost
    of a stack is the median of its epochs after the first. ``serial_*`` is the sum over stacks (the work),
    ``seconds`` the measured wall time (less than the work with worker processes).
    """
    import resource

    sync = synchronizer(args.device)
    sync()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, c0 = time.perf_counter(), time.process_time()
    result = fit_vae_nmf_stack(
        list(problems),
        args.rank,
        max_epochs=epochs,
        seeds=args.seed,
        device=args.device,
        chunk_size=args.vae_chunk,
        rng=args.vae_rng,
        workers=workers,
        hidden=tuple(hidden),
        noise_var=0.05,
    )
    sync()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu += (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    spent = result.training_time()  # per worker process, its stacks one after the other; the slowest
    per_epoch = sum(float(np.median(t["epoch_seconds"][1:])) for t in result.timings)
    per_epoch_cpu = sum(float(np.median(t["epoch_cpu_seconds"][1:])) for t in result.timings)
    serial = sum(t["seconds"] for t in result.timings)
    serial_cpu = sum(t["cpu_seconds"] for t in result.timings)
    return {
        "epochs_run": epochs,
        "workers": workers,
        "stacks": len(result.timings),
        "seconds": wall,
        "cpu_seconds": cpu,
        "serial_seconds": serial,
        "serial_cpu_seconds": serial_cpu,
        "per_epoch_seconds": per_epoch,
        "per_epoch_cpu_seconds": per_epoch_cpu,
        "per_epoch_wall_seconds": spent["per_epoch_seconds"],
        "processes": spent["processes"],
        "serial_fixed_seconds": serial - epochs * per_epoch,
        "serial_fixed_cpu_seconds": serial_cpu - epochs * per_epoch_cpu,
    }


def _extrapolate_stack(t: dict[str, float], epochs: int, problems_factor: float = 1.0) -> dict[str, float]:
    """The measured run plus its per-epoch cost for every further epoch: wall time by the slowest worker
    process's epoch (the sum over the stacks it trained), CPU time by the sum over all stacks; the fixed costs
    (spawning the workers, each stack's set-up) are counted once, as measured."""
    more = epochs - t["epochs_run"]
    return {
        "seconds": (t["seconds"] + more * t["per_epoch_wall_seconds"]) * problems_factor,
        "cpu_seconds": (t["cpu_seconds"] + more * t["per_epoch_cpu_seconds"]) * problems_factor,
    }


def _gemm_floor(
    args: argparse.Namespace, hidden: Sequence[int], models: int, batch: int = 128
) -> dict[str, float]:
    """Per model-step seconds of the three products of the widest hidden layer (forward, gradient of its input,
    gradient of its weight) on a stack of ``models`` models: what a step cannot go below."""
    width = int(max(hidden))
    x = torch.rand(models, batch, width, device=args.device)
    w = torch.rand(models, width, width, device=args.device)
    b = torch.rand(models, 1, width, device=args.device)
    g = torch.rand(models, batch, width, device=args.device)

    def step() -> None:
        for _ in range(10):
            torch.baddbmm(b, x, w)
            torch.bmm(g, w.transpose(1, 2))
            torch.bmm(x.transpose(1, 2), g)

    timing, _ = best_time(step, args.repeats, device=args.device)
    return {
        "models": models,
        "per_model_step_ms": timing.seconds / 10 / models * 1e3,
        "per_model_step_cpu_ms": timing.cpu_seconds / 10 / models * 1e3,
        "what": f"the 3 products of the {width} x {width} layer per step (batch {batch}), float32",
    }


def _today_config(
    model: str, epochs: int, out: Path, args: argparse.Namespace, hidden: Sequence[int] | None
) -> Any:
    """The synergy task's config (`vaenmf-train task=synergy method=<method>`), as `make reproduce` composes it."""
    from hydra import compose, initialize_config_dir

    overrides = [
        "task=synergy",
        f"method={model}",
        f"dictionary.{'epochs' if model == 'vae_nmf' else 'mu_iterations'}={epochs}",
        f"paths.output_dir={out}",
        f"trainer={'gpu' if torch.device(args.device).type == 'cuda' else 'cpu'}",
        "trainer.enable_progress_bar=false",
        f"seed={args.seed}",
    ]
    if hidden is not None and model.startswith("vae_nmf"):
        overrides.append(f"dictionary.system.hidden=[{','.join(str(h) for h in hidden)}]")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        return compose("train", overrides=overrides)


def _today_fit(
    model: str, X: torch.Tensor, epochs: int, args: argparse.Namespace, hidden: Sequence[int] | None
) -> tuple[float, float]:
    """Wall and CPU seconds of one movement's fit on today's path (the synergy task's own call)."""
    import logging

    # Quiet loggers for the timing, restored afterwards (the caller's logging is not ours to change).
    loggers = [
        logging.getLogger(name) for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "vaenmf")
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        return _timed_fit(model, X, epochs, args, hidden)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _timed_fit(
    model: str, X: torch.Tensor, epochs: int, args: argparse.Namespace, hidden: Sequence[int] | None
) -> tuple[float, float]:
    from vaenmf.tasks.dictionary import train_dictionary_system
    from vaenmf.tasks.runtime import JobContext

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _today_config(model, epochs, Path(tmp), args, hidden)
        job = JobContext(cfg, Path(tmp))
        sync = synchronizer(args.device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            train_dictionary_system(job, f"s1_m{epochs}", X, cfg.dictionary, int(cfg.seed))
            sync()
            t1, c1 = time.perf_counter(), time.process_time()
        job.finish()
    return t1 - t0, c1 - c0


def _loop_timing(
    model: str,
    problems: Sequence[torch.Tensor],
    epochs: Sequence[int],
    args: argparse.Namespace,
    hidden: Sequence[int] | None,
) -> dict[str, float]:
    """Today's per-movement cost split into fixed and per-epoch parts (two epoch counts), mean over problems."""
    e1, e2 = int(epochs[0]), int(epochs[1])
    _today_fit(model, problems[0], 1, args, hidden)  # warm-up: imports, Hydra, Lightning
    fixed, per_epoch, fixed_cpu, per_epoch_cpu, longer, longer_cpu = [], [], [], [], [], []
    for X in problems:
        w1, c1 = _today_fit(model, X, e1, args, hidden)
        w2, c2 = _today_fit(model, X, e2, args, hidden)
        per_epoch.append((w2 - w1) / (e2 - e1))
        per_epoch_cpu.append((c2 - c1) / (e2 - e1))
        fixed.append(w1 - e1 * per_epoch[-1])
        fixed_cpu.append(c1 - e1 * per_epoch_cpu[-1])
        longer.append(w2)
        longer_cpu.append(c2)
    timing = {
        "problems_timed": len(problems),
        "epochs_run": [e1, e2],
        "per_epoch_seconds": float(np.mean(per_epoch)),
        "per_epoch_cpu_seconds": float(np.mean(per_epoch_cpu)),
        "fixed_seconds": float(np.mean(fixed)),
        "fixed_cpu_seconds": float(np.mean(fixed_cpu)),
        "split_measured": True,
    }
    if timing["per_epoch_seconds"] <= 0 or timing["per_epoch_cpu_seconds"] <= 0:
        # The two fits differ by less than the machine's noise (few epochs on a busy machine): no usable split.
        # Charge the longer fit's whole time to its epochs instead, an upper bound of the per-epoch cost.
        timing.update(
            per_epoch_seconds=float(np.mean(longer)) / e2,
            per_epoch_cpu_seconds=float(np.mean(longer_cpu)) / e2,
            fixed_seconds=0.0,
            fixed_cpu_seconds=0.0,
            split_measured=False,
        )
    return timing


def _vae_problems(count: int, args: argparse.Namespace, offset: int = 0) -> list[torch.Tensor]:
    rng = np.random.default_rng(args.seed + 17 + offset)
    lengths = rng.integers(int(0.85 * args.vae_n), int(1.15 * args.vae_n) + 1, size=count)
    out = []
    for k, n_k in enumerate(lengths):
        X = torch.from_numpy(
            emg_problem(args.seed * 7_919 + offset * 100_003 + k, args.m, int(n_k), args.rank)
        )
        out.append(X / X.pow(2).mean().sqrt().clamp_min(1e-12))  # the synergy task's unit-power scaling
    return out


def _extrapolate(t: dict[str, float], epochs: int, problems_factor: float = 1.0) -> dict[str, float]:
    """Today's loop: ``(fixed + epochs x per-epoch) x problems``."""
    return {
        "seconds": (t["fixed_seconds"] + epochs * t["per_epoch_seconds"]) * problems_factor,
        "cpu_seconds": (t["fixed_cpu_seconds"] + epochs * t["per_epoch_cpu_seconds"]) * problems_factor,
    }


def vae_part(args: argparse.Namespace) -> dict[str, Any]:
    K, E = args.vae_problems, args.vae_epochs
    hidden = tuple(args.hidden)
    problems = _vae_problems(K, args)
    # Today's loop is timed before and after the batched runs: its many small operations make it the more
    # sensitive to the shared machine's state (its per-epoch time varied 0.16-0.27 s between back-to-back runs
    # on an idle VM, against 0.13 s earlier the same day). The ratios use the faster of the two, which can only
    # understate the speed-up.
    loop_problems = problems[: args.loop_problems]
    loop_rounds = [_loop_timing("vae_nmf", loop_problems, args.loop_epochs, args, hidden)]
    runs = {
        str(w): _stack_timing(problems, args.vae_measure_epochs, args, hidden, workers=w)
        for w in args.vae_workers
    }
    loop_rounds.append(_loop_timing("vae_nmf", loop_problems, args.loop_epochs, args, hidden))
    loop = min(loop_rounds, key=lambda t: _extrapolate(t, E)["seconds"])
    loop_full = _extrapolate(loop, E, problems_factor=K)
    batched = {w: _extrapolate_stack(t, E) for w, t in runs.items()}
    steps_per_epoch = float(np.mean([math.ceil(p.shape[1] / 128) for p in problems]))
    first = str(args.vae_workers[0])
    best = min(batched, key=lambda w: batched[w]["seconds"])
    floor = _gemm_floor(args, hidden, min(K, args.vae_chunk or CPU_CHUNK))
    loop_step = loop["per_epoch_seconds"] / steps_per_epoch * 1e3
    return {
        "config": {
            "problems": K,
            "m": args.m,
            "frames_mean": float(np.mean([p.shape[1] for p in problems])),
            "frames_range": [int(min(p.shape[1] for p in problems)), int(max(p.shape[1] for p in problems))],
            "rank": args.rank,
            "epochs": E,
            "batch_size": 128,
            "hidden": list(hidden),
            "adam": {"lr": 1e-3, "weight_decay": 5e-4},
            "noise_var": 0.05,
            "device": args.device,
            "stack_chunk_size": {
                str(w): args.vae_chunk or (K if args.device != "cpu" else default_chunk_size(K, w))
                for w in args.vae_workers
            },
            "rng": args.vae_rng,
            "workers_measured": list(args.vae_workers),
            "loop": "vaenmf.tasks.dictionary.train_dictionary_system per movement with the composed "
            "task=synergy method=vae_nmf config (VAENMFSystem under the configured Trainer, one thread)",
        },
        "measured": {"batched": runs, "loop": loop, "loop_rounds": loop_rounds},
        "extrapolated": True,
        "extrapolation": (
            f"batched: the measured time of one run of {args.vae_measure_epochs} epochs plus "
            f"{E - args.vae_measure_epochs} more epochs, each at the measured per-epoch cost (wall: the slowest "
            "worker process's sum over its stacks of their median epoch after the first; CPU: the sum over "
            "all stacks); "
            f"loop: fixed + {E} x per-epoch cost per movement, from fits of {loop['epochs_run']} epochs on "
            f"{loop['problems_timed']} movements, times {K} movements; timed before and after the batched runs "
            "(loop_rounds), the faster round used"
        ),
        "batched": batched[first],
        "batched_by_workers": batched,
        "loop": loop_full,
        "speedup": loop_full["seconds"] / batched[first]["seconds"],
        "speedup_cpu": loop_full["cpu_seconds"] / batched[first]["cpu_seconds"],
        "speedup_by_workers": {w: loop_full["seconds"] / b["seconds"] for w, b in batched.items()},
        "best_speedup": loop_full["seconds"] / batched[best]["seconds"],
        "best_workers": int(best),
        "per_model_step_ms": {
            "batched": runs[first]["per_epoch_seconds"] / K / steps_per_epoch * 1e3,
            "loop": loop_step,
            "batched_cpu": runs[first]["per_epoch_cpu_seconds"] / K / steps_per_epoch * 1e3,
            "loop_cpu": loop["per_epoch_cpu_seconds"] / steps_per_epoch * 1e3,
        },
        "gemm_floor": {**floor, "max_speedup_vs_loop_one_thread": loop_step / floor["per_model_step_ms"]},
        "_per_problem_stack": runs[first],
    }


# ---------------------------------------------------------------------------------------------- (c) Figure 2
def _today_nmf_movement(
    args: argparse.Namespace, X_train: torch.Tensor, X_test: torch.Tensor
) -> dict[str, float]:
    """Today's NMF path for one movement: the fit (task=synergy method=nmf under the Trainer) and the reconstructions."""
    w_fit, c_fit = _today_fit("nmf", X_train, args.nmf_iters, args, None)
    W = torch.rand(args.m, args.rank)
    timing, _ = best_time(
        lambda: [fit_activations(X, W, beta=2, n_iter=args.nmf_iters) for X in (X_train, X_test)], 1
    )
    return {"fit_seconds": w_fit, "fit_cpu_seconds": c_fit, "activations_seconds": timing.seconds}


def figure2_part(
    args: argparse.Namespace, nmf_rep: dict[str, Any], vae_rep: dict[str, Any]
) -> dict[str, Any]:
    P = args.fig2_problems
    n_train, n_test, n_bench = args.fig2_train_n, args.fig2_test_n, args.n
    iters = args.nmf_iters
    # Per problem-iteration costs measured in (a), scaled to the DB1 lengths (the products are linear in n).
    fit_us = nmf_rep["implementations"]["ours_batched"]["per_problem_iteration_us"]
    act_us = nmf_rep["activations_batched"]["per_problem_iteration_us"]
    activations_batched = act_us * 1e-6 * iters * P * (n_train + n_test) / n_bench
    nmf_batched_s = fit_us * 1e-6 * iters * P * n_train / n_bench + activations_batched
    X_train = torch.from_numpy(emg_problem(args.seed + 5, args.m, n_train, args.rank))
    X_test = torch.from_numpy(emg_problem(args.seed + 6, args.m, n_test, args.rank))
    today = _today_nmf_movement(args, X_train, X_test)
    nmf_today_s = (today["fit_seconds"] + today["activations_seconds"]) * P
    factor = P / args.vae_problems
    vae_batched_s = vae_rep["batched"]["seconds"] * factor + activations_batched
    vae_today_s = vae_rep["loop"]["seconds"] * factor + today["activations_seconds"] * P
    return {
        "problems": P,
        "train_frames": n_train,
        "test_frames": n_test,
        "extrapolated": True,
        "how": (
            "NMF batched: (a)'s per problem-iteration cost of nmf_batched and fit_activations_batched scaled to "
            f"{n_train} training and {n_test} test frames; NMF today: one movement of today's NMF path measured "
            "(task=synergy method=nmf under the Trainer, then fit_activations on train and test) times "
            f"{P}; VAE-NMF: (b)'s 150-epoch extrapolations times {P}/{args.vae_problems}, plus the same "
            "activations. Posterior reconstructions (one encoder pass) are not counted."
        ),
        "nmf": {
            "batched_seconds": nmf_batched_s,
            "today_loop_seconds": nmf_today_s,
            "speedup": nmf_today_s / nmf_batched_s,
            "today_per_movement": today,
        },
        "vae_nmf": {
            "batched_seconds": vae_batched_s,
            "today_loop_seconds": vae_today_s,
            "speedup": vae_today_s / vae_batched_s,
        },
        "total": {
            "batched_seconds": nmf_batched_s + vae_batched_s,
            "today_loop_seconds": nmf_today_s + vae_today_s,
        },
    }


# ---------------------------------------------------------------------------------------------- scaling
def scaling_part(
    args: argparse.Namespace, nmf_rep: dict[str, Any], vae_rep: dict[str, Any]
) -> dict[str, Any]:
    problems = nmf_rep["_problems"]
    rows_nmf = []
    sk_per = nmf_rep["implementations"]["sklearn_loop"]["seconds"] / len(problems)
    loop_per = nmf_rep["implementations"]["ours_loop"]["seconds"] / len(problems)
    for count in args.scaling:
        if count > len(problems):
            continue
        if count == len(problems):
            seconds, how = nmf_rep["implementations"]["ours_batched"]["seconds"], "measured in (a)"
        else:
            timing, _ = best_time(
                lambda count=count: nmf_batched(
                    problems[:count], args.rank, beta=2, n_iter=args.nmf_iters, device=args.device
                ),
                args.repeats,
                device=args.device,
            )
            seconds, how = timing.seconds, "measured"
        rows_nmf.append(
            {
                "problems": count,
                "ours_batched_seconds": seconds,
                "ours_batched": how,
                "sklearn_loop_seconds": sk_per * count,
                "ours_loop_seconds": loop_per * count,
                "loops": "extrapolated from (a)'s per-problem cost",
            }
        )
    K = args.vae_problems
    stack = vae_rep["_per_problem_stack"]
    loop_per_problem = vae_rep["loop"]["seconds"] / K
    rows_vae = []
    hidden = tuple(args.hidden)
    for count in args.scaling:
        if count == K:
            full, how = vae_rep["batched"], f"extrapolated to {args.vae_epochs} epochs from (b)"
        elif count < K and count <= args.scaling_measure_max:
            measured = _stack_timing(
                _vae_problems(count, args, offset=count), args.vae_measure_epochs, args, hidden
            )
            full = _extrapolate_stack(measured, args.vae_epochs)
            how = f"{measured['epochs_run']} epochs measured, extrapolated to {args.vae_epochs}"
        else:
            full = _extrapolate_stack(stack, args.vae_epochs, problems_factor=count / K)
            how = f"extrapolated from (b): {count}/{K} x its {args.vae_epochs}-epoch estimate"
        rows_vae.append(
            {
                "problems": count,
                "batched_seconds": full["seconds"],
                "batched": how,
                "loop_seconds": loop_per_problem * count,
                "loop": "extrapolated from (b)'s per-movement cost",
            }
        )
    return {"nmf": rows_nmf, "vae_nmf": rows_vae}


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(p, "outputs/bench/synergy.json")
    p.set_defaults(threads=1, repeats=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--m", type=int, default=10)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--nmf-problems", type=int, default=1404)
    p.add_argument("--n", type=int, default=2000, help="frames of every NMF problem of (a)")
    p.add_argument("--nmf-iters", type=int, default=500)
    p.add_argument("--sklearn-subset", type=int, default=108, help="problems the loops are timed on (scaled)")
    p.add_argument("--vae-problems", type=int, default=324)
    p.add_argument("--vae-n", type=int, default=3500, help="mean frames of a VAE-NMF problem of (b)")
    p.add_argument("--vae-epochs", type=int, default=150, help="epochs the VAE-NMF times are extrapolated to")
    p.add_argument(
        "--vae-measure-epochs", type=int, default=2, help="epochs actually run by the stack (>= 2)"
    )
    p.add_argument(
        "--vae-chunk", type=int, default=None, help="models per stack (default: fit_vae_nmf_stack's)"
    )
    p.add_argument("--vae-rng", default="per_model", choices=("per_model", "shared"))
    p.add_argument(
        "--vae-workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="worker processes of the stacks (each measured)",
    )
    p.add_argument(
        "--no-malloc-tuning",
        action="store_true",
        help="leave glibc's malloc as it is (default: retain_freed_memory() for the whole run, both methods)",
    )
    p.add_argument("--hidden", type=int, nargs="+", default=[400, 400])
    p.add_argument("--loop-problems", type=int, default=3, help="movements today's loop is timed on")
    p.add_argument(
        "--loop-epochs", type=int, nargs=2, default=[1, 5], help="two epoch counts of the loop's fits"
    )
    p.add_argument("--fig2-problems", type=int, default=27 * 52)
    p.add_argument("--fig2-train-n", type=int, default=3500)
    p.add_argument("--fig2-test-n", type=int, default=1500)
    p.add_argument("--scaling", type=int, nargs="+", default=[1, 27, 324, 1404])
    p.add_argument(
        "--scaling-measure-max", type=int, default=27, help="VAE-NMF stacks up to this size are measured"
    )
    args = p.parse_args(argv)
    if args.vae_measure_epochs < 2:
        p.error("--vae-measure-epochs must be >= 2 (the per-epoch cost comes from the second epoch on)")
    if args.device != "cpu":
        args.vae_workers = [1]  # worker processes are a CPU feature: one stack per device
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    skipped = cuda_unavailable_report(args.device)
    if skipped is not None:
        write_report(args.out, skipped)
        print(f"skipped: {skipped['reason']}; wrote {args.out}")
        return skipped
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("WANDB_SILENT", "true")
    # One allocator setting for the whole process, so both methods run under it (and the workers set it too).
    malloc_tuned = False if args.no_malloc_tuning else retain_freed_memory()
    gate = IdleGate(args.wait_idle)
    import sklearn.decomposition  # noqa: F401  (load its BLAS before limiting the thread pools)

    with thread_limits(args.threads):
        env = environment(
            args.threads, shared=args.shared, note=args.note, device=args.device, libraries=("sklearn",)
        )
        nmf_rep = nmf_part(args, gate)
        vae_rep = vae_part(args)
        fig2 = figure2_part(args, nmf_rep, vae_rep)
        scaling = scaling_part(args, nmf_rep, vae_rep)
    for rep in (nmf_rep, vae_rep):
        for key in [k for k in rep if k.startswith("_")]:
            rep.pop(key)
    env = finish_environment(env)
    env["idle_gate"] = gate.summary()
    env["malloc"] = (
        "glibc mallopt(M_MMAP_THRESHOLD=1 GiB, M_TRIM_THRESHOLD=2 GiB) for the whole run "
        "(vaenmf.models.vae_nmf_stack.retain_freed_memory)"
        if malloc_tuned
        else "glibc defaults"
    )
    report = {
        "device": args.device,
        "threads": args.threads,
        "environment": env,
        "nmf": nmf_rep,
        "vae_nmf": vae_rep,
        "figure2": fig2,
        "scaling": scaling,
        "targets": {
            "nmf_20x_faster_than_sklearn": nmf_rep["speedup_vs_sklearn"] >= TARGET_NMF,
            "nmf_losses_within_0.5%_of_sklearn": nmf_rep["losses"]["within_0.5%"],
            "vae_nmf_5x_faster_than_loop": vae_rep["best_speedup"] >= TARGET_VAE,
        },
    }
    write_report(args.out, report)
    if not args.quiet:
        print(format_summary(report))
        print(f"wrote {args.out}")
    if not nmf_rep["losses"]["within_0.5%"]:
        raise SystemExit(
            f"final losses differ from scikit-learn's by up to "
            f"{nmf_rep['losses']['max_relative_difference_ours_batched_vs_sklearn']:.3%} (> 0.5%)"
        )
    return report


def format_summary(report: dict[str, Any]) -> str:
    nmf_rep, vae_rep, fig2 = report["nmf"], report["vae_nmf"], report["figure2"]
    impl = nmf_rep["implementations"]
    lines = [
        f"synergy benchmark on {report['device']}, {report['threads']} thread(s)"
        + (" (shared machine)" if report["environment"]["machine_shared"] else ""),
        f"(a) NMF {nmf_rep['config']['problems']} x ({nmf_rep['config']['m']} x {nmf_rep['config']['n']}), rank "
        f"{nmf_rep['config']['rank']}, {nmf_rep['config']['iterations']} iterations: batched "
        f"{impl['ours_batched']['seconds']:.2f} s, sklearn loop {impl['sklearn_loop']['seconds']:.2f} s (scaled), "
        f"ours one at a time {impl['ours_loop']['seconds']:.2f} s (scaled): {nmf_rep['speedup_vs_sklearn']:.1f}x vs "
        f"sklearn ({nmf_rep['speedup_vs_sklearn_cpu']:.1f}x CPU time); losses within "
        f"{nmf_rep['losses']['max_relative_difference_ours_batched_vs_sklearn']:.2e}; products alone "
        f"{nmf_rep['products_only']['share_of_ours_batched']:.0%} of batched "
        f"(at most {nmf_rep['products_only']['max_speedup_vs_sklearn_with_these_products']:.1f}x vs sklearn)",
        f"(b) VAE-NMF {vae_rep['config']['problems']} problems, {vae_rep['config']['epochs']} epochs "
        f"(extrapolated): batched {vae_rep['batched']['seconds']:.0f} s, today's loop {vae_rep['loop']['seconds']:.0f} s: "
        f"{vae_rep['speedup']:.1f}x ({vae_rep['speedup_cpu']:.1f}x CPU time), by workers "
        + ", ".join(f"{w}: {v:.1f}x" for w, v in vae_rep["speedup_by_workers"].items())
        + f"; per model-step {vae_rep['per_model_step_ms']['batched']:.2f} ms against "
        f"{vae_rep['per_model_step_ms']['loop']:.2f} ms (GEMM floor {vae_rep['gemm_floor']['per_model_step_ms']:.2f} ms)",
        f"(c) Figure 2, {fig2['problems']} problems (extrapolated): NMF {fig2['nmf']['batched_seconds']:.0f} s vs "
        f"{fig2['nmf']['today_loop_seconds']:.0f} s, VAE-NMF {fig2['vae_nmf']['batched_seconds']:.0f} s vs "
        f"{fig2['vae_nmf']['today_loop_seconds']:.0f} s",
        "targets: " + ", ".join(f"{k}: {v}" for k, v in report["targets"].items()),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
