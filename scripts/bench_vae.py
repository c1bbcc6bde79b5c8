"""`make bench` (VAE-NMF part): training throughput and the cost of the RSVI sampler against Gamma.rsample.

Writes ``outputs/bench/vae_nmf.json``. Absolute numbers drift with the machine's load; the sampler result is
reported as a ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from vaenmf.models.gamma import sample_gamma
from vaenmf.models.vae_nmf import VAENMF


def _best_time(fn, repeats: int, number: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def bench_sampler(batch: int, rank: int, repeats: int, number: int) -> dict[str, float]:
    """Seconds per draw (forward, and forward + backward through the sample) for each sampler."""
    g = torch.Generator().manual_seed(0)
    alpha = (torch.rand(batch, rank, generator=g) * 3 + 0.2).requires_grad_()
    beta = (torch.rand(batch, rank, generator=g) + 0.5).requires_grad_()
    out: dict[str, float] = {}
    for sampler in ("rsvi", "implicit"):

        def forward(sampler=sampler):
            with torch.no_grad():
                sample_gamma(alpha, beta, sampler=sampler)

        def forward_backward(sampler=sampler):
            sample_gamma(alpha, beta, sampler=sampler).sum().backward()

        out[f"{sampler}_forward_s"] = _best_time(forward, repeats, number)
        out[f"{sampler}_forward_backward_s"] = _best_time(forward_backward, repeats, number)
    out["rsvi_over_implicit_forward"] = out["rsvi_forward_s"] / out["implicit_forward_s"]
    out["rsvi_over_implicit_forward_backward"] = (
        out["rsvi_forward_backward_s"] / out["implicit_forward_backward_s"]
    )
    return out


def bench_training(m: int, rank: int, batch: int, steps: int, repeats: int) -> dict[str, dict[str, float]]:
    """Frames per second of one Adam step of VAE-NMF (forward, loss, backward, update) per configuration."""
    results = {}
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, m, generator=g) * 5
    for likelihood in ("gaussian", "poisson", "exponential"):
        for sampler in ("rsvi", "implicit"):
            torch.manual_seed(0)
            model = VAENMF(m, rank, likelihood=likelihood, sampler=sampler)
            model.reset_dictionary(x)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)

            def step(model=model, optimizer=optimizer):
                optimizer.zero_grad(set_to_none=True)
                model(x)["loss"].backward()
                optimizer.step()

            seconds = _best_time(lambda step=step: [step() for _ in range(steps)], repeats, 1) / steps
            results[f"{likelihood}/{sampler}"] = {"step_s": seconds, "frames_per_s": batch / seconds}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/vae_nmf.json"))
    parser.add_argument("--m", type=int, default=257)
    parser.add_argument("--rank", type=int, default=40)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--number", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {
        "what": "VAE-NMF training throughput and Gamma sampler cost (CPU, float32)",
        "shape": {"m": args.m, "rank": args.rank, "batch": args.batch},
        "sampler": bench_sampler(args.batch, args.rank, args.repeats, args.number),
        "training": bench_training(args.m, args.rank, args.batch, args.steps, args.repeats),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    s = report["sampler"]
    print(
        f"Gamma sampler at ({args.batch}, {args.rank}): RSVI {s['rsvi_forward_s'] * 1e3:.3f} ms, "
        f"implicit {s['implicit_forward_s'] * 1e3:.3f} ms per draw (RSVI/implicit = "
        f"{s['rsvi_over_implicit_forward']:.2f}x; with backward {s['rsvi_over_implicit_forward_backward']:.2f}x)"
    )
    for name, r in report["training"].items():
        print(
            f"VAE-NMF training {name:22s} {r['frames_per_s']:10.0f} frames/s ({r['step_s'] * 1e3:.2f} ms/step)"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
