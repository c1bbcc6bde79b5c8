"""Smoke test of scripts/bench/nmf.py on a tiny problem: it runs, writes its JSON, and all implementations agree."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "nmf.py"

pytest.importorskip("sklearn")
pytest.importorskip("torchnmf")
pytest.importorskip("threadpoolctl")


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_nmf_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_script_writes_json_and_implementations_agree(tmp_path):
    bench = _load_script()
    out = tmp_path / "bench" / "nmf.json"
    threads_before = torch.get_num_threads()
    tiny = [
        "--m",
        "20",
        "--n",
        "200",
        "--rank",
        "4",
        "--iters",
        "5",
        "--repeats",
        "1",
        "--threads",
        "1",
        "--quiet",
        "--shared",
    ]
    report = bench.main(["--out", str(out), *tiny])
    assert torch.get_num_threads() == threads_before  # the script restores the thread count it changed
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))

    assert report["config"]["m"] == 20 and report["config"]["iters"] == 5
    assert report["config"]["flops_per_iteration"] == 8 * 20 * 4 * 200
    env = report["environment"]
    for key in (
        "torch",
        "sklearn",
        "torchnmf",
        "torch_num_threads",
        "threadpoolctl",
        "cpu_model",
        "timestamp",
    ):
        assert key in env
    assert env["torch_num_threads"] == 1
    assert env["machine_shared"] is True
    gemm = report["gemm_gflops"]
    assert len(gemm) == 4 and all(v > 0 for v in gemm.values())

    assert set(report["results"]) == {"1", "2"}
    for key, res in report["results"].items():
        impls = res["implementations"]
        assert set(impls) == {"ours", "public", "sklearn", "torchnmf"}
        # The public entry point starts from the same factors: its dictionary is the loop's, normalised.
        assert impls["public"]["public_matches_loop"] is True
        assert res["public_over_loop"] > 0 and report["targets"][key]["public_within_5%_of_loop"] in (
            True,
            False,
        )
        ours = impls["ours"]
        for row in impls.values():
            for field in (
                "seconds",
                "cpu_seconds",
                "gflops",
                "final_loss",
                "time_ratio_to_ours",
                "cpu_time_ratio_to_ours",
                "loss_ratio_to_ours",
            ):
                assert row[field] > 0, (key, field)
            # Same data, same initial factors, same alternating updates: the same final loss.
            assert row["final_loss"] == pytest.approx(ours["final_loss"], rel=1e-2)
            assert row["final_loss"] < res["initial_loss"]
        assert set(ours["fraction_of_gemm_rate"]) == set(gemm)
        assert key in report["targets"]
