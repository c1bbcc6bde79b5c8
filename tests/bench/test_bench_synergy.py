"""Smoke test of scripts/bench/synergy.py on tiny sizes: it runs every part, writes its JSON, and checks losses."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "synergy.py"

pytest.importorskip("sklearn")
pytest.importorskip("threadpoolctl")
pytest.importorskip("hydra")

TINY = [
    "--nmf-problems",
    "6",
    "--n",
    "200",
    "--nmf-iters",
    "20",
    "--sklearn-subset",
    "3",
    "--vae-problems",
    "3",
    "--vae-n",
    "300",
    "--vae-epochs",
    "5",
    "--hidden",
    "16",
    "16",
    "--loop-problems",
    "1",
    "--loop-epochs",
    "1",
    "2",
    "--fig2-problems",
    "12",
    "--fig2-train-n",
    "300",
    "--fig2-test-n",
    "100",
    "--scaling",
    "1",
    "3",
    "6",
    "--scaling-measure-max",
    "1",
    "--vae-workers",
    "1",
    "--repeats",
    "1",
    "--quiet",
    "--shared",
]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_synergy_bench_writes_every_part(tmp_path):
    bench = _load("bench_synergy_script")
    out = tmp_path / "synergy.json"
    threads_before = torch.get_num_threads()
    report = bench.main(["--out", str(out), *TINY])
    assert torch.get_num_threads() == threads_before
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    env = report["environment"]
    assert env["machine_shared"] is True and env["torch_num_threads"] == 1 and report["threads"] == 1

    nmf = report["nmf"]
    assert set(nmf["implementations"]) == {"ours_batched", "sklearn_loop", "ours_loop"}
    assert nmf["implementations"]["sklearn_loop"]["scaled_to_all_problems"] is True
    assert nmf["implementations"]["sklearn_loop"]["problems_timed"] == 3
    assert "scaled" in nmf["loop_timing"]
    # Same problems, same initialisation, same algorithm: the same losses (far tighter than the 0.5% check).
    assert nmf["losses"]["within_0.5%"] is True
    assert nmf["losses"]["max_relative_difference_ours_batched_vs_sklearn"] < 1e-3
    assert nmf["losses"]["max_relative_difference_ours_batched_vs_ours_loop"] < 1e-4
    assert nmf["losses"]["mean_final_over_initial"] < 0.5  # the fits did something
    assert nmf["speedup_vs_sklearn"] > 0 and nmf["products_only"]["seconds"] > 0
    assert "malloc" in env

    vae = report["vae_nmf"]
    assert vae["extrapolated"] is True and vae["config"]["epochs"] == 5
    assert (
        vae["measured"]["batched"]["1"]["epochs_run"] == 2 and vae["measured"]["loop"]["problems_timed"] == 1
    )
    assert vae["gemm_floor"]["per_model_step_ms"] > 0 and vae["best_workers"] == 1
    # The loop timed before and after the batched runs; the faster round is the one the ratios use.
    rounds = vae["measured"]["loop_rounds"]
    assert len(rounds) == 2 and vae["measured"]["loop"] in rounds
    fastest = min(
        (r["fixed_seconds"] + 5 * r["per_epoch_seconds"]) * 3 for r in rounds
    )  # 5 epochs, 3 problems
    assert vae["loop"]["seconds"] == pytest.approx(fastest)
    assert vae["batched"]["seconds"] > 0 and vae["loop"]["seconds"] > 0 and vae["speedup"] > 0

    fig2 = report["figure2"]
    assert fig2["extrapolated"] is True and fig2["problems"] == 12
    for method in ("nmf", "vae_nmf"):
        assert fig2[method]["batched_seconds"] > 0 and fig2[method]["today_loop_seconds"] > 0

    assert [row["problems"] for row in report["scaling"]["nmf"]] == [1, 3, 6]
    assert [row["problems"] for row in report["scaling"]["vae_nmf"]] == [1, 3, 6]
    assert report["scaling"]["vae_nmf"][0]["batched"].startswith("2 epochs measured")
    assert set(report["targets"]) == {
        "nmf_20x_faster_than_sklearn",
        "nmf_losses_within_0.5%_of_sklearn",
        "vae_nmf_5x_faster_than_loop",
    }


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_synergy_bench_skips_a_missing_gpu(tmp_path):
    bench = _load("bench_synergy_script_cuda")
    out = tmp_path / "synergy_cuda.json"
    report = bench.main(["--out", str(out), "--device", "cuda", *TINY])
    assert report["skipped"] is True and json.loads(out.read_text())["device"] == "cuda"


def test_loop_split_that_noise_makes_negative_falls_back_to_an_upper_bound(monkeypatch):
    """Two fits whose times differ by less than the machine's noise (the longer one measured faster) give no usable
    fixed/per-epoch split: the longer fit's whole time is charged to its epochs, never a negative cost."""
    bench = _load("bench_synergy_loop_split")
    times = iter([(9.0, 9.0), (3.0, 2.5), (2.8, 2.4)])  # warm-up, then 1 epoch: 3.0 s, 2 epochs: 2.8 s
    monkeypatch.setattr(bench, "_today_fit", lambda *a, **k: next(times))
    timing = bench._loop_timing("vae_nmf", [torch.zeros(2, 2)], (1, 2), None, None)
    assert timing["split_measured"] is False
    assert timing["per_epoch_seconds"] == pytest.approx(1.4) and timing["fixed_seconds"] == 0.0
    assert timing["per_epoch_cpu_seconds"] == pytest.approx(1.2)
    assert bench._extrapolate(timing, 150)["seconds"] == pytest.approx(210.0)
    times = iter([(9.0, 9.0), (3.0, 2.5), (4.0, 3.5)])  # a measurable split is kept as measured
    monkeypatch.setattr(bench, "_today_fit", lambda *a, **k: next(times))
    timing = bench._loop_timing("vae_nmf", [torch.zeros(2, 2)], (1, 2), None, None)
    assert timing["split_measured"] is True and timing["per_epoch_seconds"] == pytest.approx(1.0)
    assert timing["fixed_seconds"] == pytest.approx(2.0)


def test_stack_extrapolation_counts_fixed_costs_once_and_epochs_at_the_slowest_worker():
    """Two workers measured for 2 epochs in 30 s (spawning and set-up included), the slowest worker's epoch
    10 s, 18 s of CPU per epoch over all stacks: 150 epochs take 30 + 148 x 10 s, not 30 s x 75 (which would
    repeat the spawn 75 times)."""
    bench = _load("bench_synergy_extrapolation")
    measured = {
        "epochs_run": 2,
        "seconds": 30.0,
        "cpu_seconds": 50.0,
        "per_epoch_wall_seconds": 10.0,
        "per_epoch_cpu_seconds": 18.0,
    }
    full = bench._extrapolate_stack(measured, 150)
    assert full == {"seconds": pytest.approx(1510.0), "cpu_seconds": pytest.approx(50.0 + 148 * 18.0)}
    assert bench._extrapolate_stack(measured, 2) == {"seconds": 30.0, "cpu_seconds": 50.0}
