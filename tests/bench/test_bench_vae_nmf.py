import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "vae_nmf.py"


def test_bench_vae_writes_its_report(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_vae_nmf_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "vae.json"
    assert (
        module.main(
            [
                "--out",
                str(out),
                "--m",
                "16",
                "--rank",
                "4",
                "--batch",
                "8",
                "--steps",
                "2",
                "--repeats",
                "1",
                "--number",
                "2",
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["sampler"]["rsvi_forward_s"] > 0 and report["sampler"]["implicit_forward_s"] > 0
    assert set(report["training"]) == {
        f"{lik}/{s}" for lik in ("gaussian", "poisson", "exponential") for s in ("rsvi", "implicit")
    }
    assert all(r["frames_per_s"] > 0 for r in report["training"].values())
    assert report["environment"]["torch_num_threads"] >= 1 and "machine_shared" in report["environment"]


def test_bench_vae_skips_a_missing_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        import pytest

        pytest.skip("a GPU is present")
    spec = importlib.util.spec_from_file_location("bench_vae_nmf_script_cuda", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "vae_cuda.json"
    assert module.main(["--out", str(out), "--device", "cuda"]) == 0
    assert json.loads(out.read_text())["skipped"] is True
