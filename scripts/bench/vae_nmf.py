"""`make bench` (VAE-NMF part): training throughput and the cost of the RSVI sampler against Gamma.rsample.

Writes ``outputs/bench/vae_nmf.json``. Absolute numbers drift with the machine's load; the sampler result is
reported as a ratio measured in the same run. Timing: :mod:`bench_common` (best of ``--repeats`` after a warm-up).

Usage::

    python scripts/bench/vae_nmf.py --out outputs/bench/vae_nmf.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402
    add_common_arguments,
    best_time,
    cuda_unavailable_report,
    environment,
    finish_environment,
    thread_limits,
    write_report,
)

from vaenmf.models.gamma import sample_gamma  # noqa: E402
from vaenmf.models.vae_nmf import VAENMF  # noqa: E402


def _best_time(fn, repeats: int, number: int, device: str = "cpu") -> float:
    """Best seconds per call of ``fn``, over ``repeats`` batches of ``number`` calls (after a warm-up)."""

    def batch() -> None:
        for _ in range(number):
            fn()

    timing, _ = best_time(batch, repeats, warmup=fn, device=device)
    return timing.seconds / number


def bench_sampler(batch: int, rank: int, repeats: int, number: int, device: str = "cpu") -> dict[str, float]:
    """Seconds per draw (forward, and forward + backward through the sample) for each sampler."""
    g = torch.Generator().manual_seed(0)
    alpha = (torch.rand(batch, rank, generator=g) * 3 + 0.2).to(device).requires_grad_()
    beta = (torch.rand(batch, rank, generator=g) + 0.5).to(device).requires_grad_()
    out: dict[str, float] = {}
    for sampler in ("rsvi", "implicit"):

        def forward(sampler=sampler):
            with torch.no_grad():
                sample_gamma(alpha, beta, sampler=sampler)

        def forward_backward(sampler=sampler):
            sample_gamma(alpha, beta, sampler=sampler).sum().backward()

        out[f"{sampler}_forward_s"] = _best_time(forward, repeats, number, device)
        out[f"{sampler}_forward_backward_s"] = _best_time(forward_backward, repeats, number, device)
    out["rsvi_over_implicit_forward"] = out["rsvi_forward_s"] / out["implicit_forward_s"]
    out["rsvi_over_implicit_forward_backward"] = (
        out["rsvi_forward_backward_s"] / out["implicit_forward_backward_s"]
    )
    return out


def bench_training(
    m: int, rank: int, batch: int, steps: int, repeats: int, device: str = "cpu"
) -> dict[str, dict[str, float]]:
    """Frames per second of one Adam step of VAE-NMF (forward, loss, backward, update) per configuration."""
    results = {}
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, m, generator=g) * 5).to(device)
    for likelihood in ("gaussian", "poisson", "exponential"):
        for sampler in ("rsvi", "implicit"):
            torch.manual_seed(0)
            model = VAENMF(m, rank, likelihood=likelihood, sampler=sampler).to(device)
            model.reset_dictionary(x)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)

            def step(model=model, optimizer=optimizer):
                optimizer.zero_grad(set_to_none=True)
                model(x)["loss"].backward()
                optimizer.step()

            seconds = _best_time(lambda step=step: [step() for _ in range(steps)], repeats, 1, device) / steps
            results[f"{likelihood}/{sampler}"] = {"step_s": seconds, "frames_per_s": batch / seconds}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, "outputs/bench/vae_nmf.json")
    parser.add_argument("--m", type=int, default=257)
    parser.add_argument("--rank", type=int, default=40)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--number", type=int, default=200)
    args = parser.parse_args(argv)
    skipped = cuda_unavailable_report(args.device)
    if skipped is not None:
        write_report(args.out, skipped)
        print(f"skipped: {skipped['reason']}; wrote {args.out}")
        return 0
    with thread_limits(args.threads):
        env = environment(args.threads, shared=args.shared, note=args.note, device=args.device)
        report = {
            "what": f"VAE-NMF training throughput and Gamma sampler cost ({args.device}, float32)",
            "shape": {"m": args.m, "rank": args.rank, "batch": args.batch},
            "device": args.device,
            "sampler": bench_sampler(args.batch, args.rank, args.repeats, args.number, args.device),
            "training": bench_training(args.m, args.rank, args.batch, args.steps, args.repeats, args.device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    report["environment"] = finish_environment(env)
    write_report(args.out, report)
    s = report["sampler"]
    if not args.quiet:
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
