"""scripts/compare_vae_choices.py: the table built from hand-written job folders, and --dry-run."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_vae_choices.py"
SNRS = ("-5", "0", "5", "10")


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_vae_choices", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _config(likelihood: str, sampler: str, seed: int, noise_var: float | None = None) -> dict:
    system = {"likelihood": likelihood, "sampler": sampler, "rank": 40}
    if noise_var is not None:
        system["noise_var"] = noise_var
    return {
        "seed": seed,
        "model": {"name": "vae_nmf", "max_iter": 7, "system": system},
        "data": {"corpus": "demo", "n_test_utterances": 3},
    }


def _ok_job(
    job: Path,
    cfg: dict,
    sdr: list[float],
    pesq: list[float],
    elbo: float,
    neg: tuple[float, float],
    dict_time: float,
    wall: float,
) -> None:
    job.mkdir(parents=True)
    summary = {
        snr: {"sdr": s, "pesq_nb": p, "sdr_input": float(snr), "n_utterances": 3}
        for snr, s, p in zip(SNRS, sdr, pesq, strict=True)
    }
    metrics = {
        "status": "ok",
        "summary": summary,
        "timings_s": {"data": 1.0, "dictionaries": dict_time},
        "wall_time_s": wall,
        "config": cfg,
    }
    (job / "metrics.json").write_text(json.dumps(metrics))
    stage = job / "csv" / "speech_dict"
    stage.mkdir(parents=True)
    # Lightning CSVLogger layout: step rows leave the epoch columns empty and vice versa.
    header = (
        "epoch,speech_dict/elbo_epoch,speech_dict/elbo_step,speech_dict/neg_fraction_epoch,"
        "speech_dict/neg_mass_epoch,step\n"
    )
    rows = [
        "0,,-500.0,,,9",
        "0,-400.0,,0.9,0.9,9",
        f"1,,{elbo - 5},,,19",
        f"1,{elbo},,{neg[0]},{neg[1]},19",
        "2,,-1.0,,,29",  # a step row after the last epoch row: must not hide the last epoch value
    ]
    (stage / "metrics.csv").write_text(header + "\n".join(rows) + "\n")


def _make_sweep(root: Path) -> None:
    grid = root / "sweeps" / "grid"
    _ok_job(
        grid / "0",
        _config("gaussian", "rsvi", 0, 0.3),
        [1, 2, 3, 4],
        [1.0, 1.5, 2.0, 2.5],
        -200.0,
        (0.5, 0.2),
        10.0,
        20.0,
    )
    _ok_job(
        grid / "1",
        _config("gaussian", "rsvi", 1, 0.3),
        [3, 4, 5, 6],
        [2.0, 2.5, 3.0, 3.5],
        -210.0,
        (0.7, 0.4),
        30.0,
        40.0,
    )
    # A Gaussian job with another sigma^2: not a cell of this grid, so ignored.
    _ok_job(grid / "2", _config("gaussian", "rsvi", 0, 1.0), [9, 9, 9, 9], [4.0] * 4, 0.0, (0, 0), 1, 1)
    failed = grid / "3"
    failed.mkdir(parents=True)
    (failed / "metrics.json").write_text(
        json.dumps(
            {
                "status": "failed",
                "error": "DataError: NaN | in W",
                "config": _config("gaussian", "implicit", 0, 0.3),
            }
        )
    )
    _ok_job(
        grid / "4",
        _config("gaussian", "implicit", 1, 0.3),
        [0, 0, 0, 0],
        [1.0] * 4,
        -300.0,
        (0.1, 0.1),
        5.0,
        6.0,
    )
    # Killed before metrics.json: only run_job's config.yaml is there.
    crashed = grid / "5"
    crashed.mkdir(parents=True)
    (crashed / "config.yaml").write_text(
        "seed: 0\nmodel:\n  system:\n    likelihood: poisson\n    sampler: rsvi\n"
    )
    # Killed even earlier: only Hydra's overrides.
    early = grid / "6" / ".hydra"
    early.mkdir(parents=True)
    (early / "overrides.yaml").write_text(
        "- model=vae_nmf\n- model.system.likelihood=poisson\n- model.system.sampler=rsvi\n- seed=1\n"
    )
    # poisson / implicit: no job at all.


def test_table_from_fake_jobs(compare, tmp_path, capsys):
    out = tmp_path / "cmp"
    _make_sweep(out)
    argv = [
        "--out",
        str(out),
        "--table-only",
        "--likelihoods",
        "gaussian,poisson",
        "--samplers",
        "rsvi,implicit",
        "--seeds",
        "0,1",
        "--gaussian-noise-var",
        "0.3",
        "--separator",
        "mu",
    ]
    assert compare.main(argv) == 1  # some cells failed
    payload = json.loads((out / "table.json").read_text())
    rows = {(r["likelihood"], r["sampler"]): r for r in payload["rows"]}
    assert list(rows) == [
        ("gaussian", "rsvi"),
        ("gaussian", "implicit"),
        ("poisson", "rsvi"),
        ("poisson", "implicit"),
    ]

    both = rows["gaussian", "rsvi"]
    assert both["status"] == "ok" and both["n_ok"] == 2 and both["noise_var"] == 0.3
    assert both["sdr_mean"] == pytest.approx((2.5 + 4.5) / 2)  # mean over SNRs, then over seeds
    assert both["sdr_low"] == pytest.approx(2.0)
    assert both["pesq_nb_mean"] == pytest.approx((1.75 + 2.75) / 2)
    assert both["sdr_input_mean"] == pytest.approx(2.5)
    assert both["elbo"] == pytest.approx(-205.0)
    assert both["neg_fraction"] == pytest.approx(0.6) and both["neg_mass"] == pytest.approx(0.3)
    assert both["dict_time_s"] == pytest.approx(20.0) and both["total_time_s"] == pytest.approx(30.0)

    partly = rows["gaussian", "implicit"]
    assert partly["status"] == "partly failed" and partly["n_ok"] == 1
    assert partly["sdr_mean"] == pytest.approx(0.0) and partly["elbo"] == pytest.approx(-300.0)
    assert any("NaN" in e for e in partly["errors"])

    crashed = rows["poisson", "rsvi"]
    assert crashed["status"] == "failed" and crashed["n_ok"] == 0 and crashed["sdr_mean"] is None
    assert crashed["noise_var"] is None
    assert len(crashed["jobs"]) == 2 and all("no metrics.json" in e for e in crashed["errors"])
    missing = rows["poisson", "implicit"]
    assert missing["status"] == "failed" and missing["errors"] == ["seed 0: not run", "seed 1: not run"]
    assert payload["ignored_jobs"] == [str(out.resolve() / "sweeps" / "grid" / "2")]

    md = (out / "table.md").read_text()
    lines = md.splitlines()
    assert lines[2] == "```bash" and lines[3].startswith("python scripts/compare_vae_choices.py --out ")
    assert "--gaussian-noise-var 0.3" in lines[3] and "--separator mu" in lines[3]
    assert "vaenmf.train -m model=vae_nmf" in md
    table = [line for line in lines if line.startswith("| ")]
    assert len(table) == 1 + 4
    assert table[1].startswith(
        "| gaussian | rsvi | **3.50** | 2.00 | 2.25 | -205.0 | 0.60 / 0.300 | 20 | 30 | ok"
    )
    assert "| gaussian | implicit | 0.00 |" in table[2] and "partly failed (1/2)" in table[2]
    assert "DataError: NaN / in W" in table[2]  # a '|' in an error message does not break the table
    assert table[3].startswith("| poisson | rsvi | failed |") and "no metrics.json" in table[3]
    assert table[4].startswith("| poisson | implicit | failed |") and "not run" in table[4]
    assert "not comparable" in md and "7 dictionary epochs" in md and "3 test utterances" in md
    assert "separator `mu`" in md and "OMP_NUM_THREADS=1" in md
    assert "| poisson | implicit" in capsys.readouterr().out


def test_last_logged_and_missing_csv(compare, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("epoch,a,b\n0,1.5,\n1,,2\n2,nan,\n")
    assert compare.last_logged(path, "b") == 2.0
    assert math.isnan(compare.last_logged(path, "a"))
    assert math.isnan(compare.last_logged(path, "zzz"))
    assert math.isnan(compare.last_logged(tmp_path / "absent.csv", "a"))


def _no_subprocess(*args, **kwargs):
    raise AssertionError("--dry-run must not start a process")


def test_dry_run_prints_command_without_running(compare, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(subprocess, "Popen", _no_subprocess)
    monkeypatch.setattr(subprocess, "run", _no_subprocess)
    out = tmp_path / "cmp"
    assert compare.main(["--dry-run", "--out", str(out), "--epochs", "5", "--n-test", "2"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[0].startswith("# regenerate: python scripts/compare_vae_choices.py")
    assert printed[1] == "# environment: OMP_NUM_THREADS=1 MKL_NUM_THREADS=1"
    assert len(printed) == 3
    command = printed[2]
    for piece in (
        "-m vaenmf.train -m model=vae_nmf",
        "model.system.likelihood=gaussian,poisson,exponential",
        "model.system.sampler=rsvi,implicit",
        "separator=dnn",
        "noise=factory",
        "logger=csv",
        "cache_dictionaries=false",
        "model.max_iter=5",
        "data.n_test_utterances=2",
        "seed=0",
        f"hydra.sweep.dir={out.resolve() / 'sweeps' / 'grid'}",
        f"paths.output_root={out.resolve()}",
    ):
        assert piece in command
    assert "noise_var" not in command  # the config's sigma^2 unless --gaussian-noise-var is given
    assert not out.exists()
    assert compare.main(["--dry-run", "--out", str(out), "--gaussian-noise-var", "0.5"]) == 0
    assert "++model.system.noise_var=0.5 " in capsys.readouterr().out


def test_table_with_the_configs_noise_var(compare, tmp_path):
    grid = tmp_path / "sweeps" / "grid"
    _ok_job(grid / "0", _config("gaussian", "rsvi", 0, 0.3), [1, 2, 3, 4], [2.0] * 4, -9.0, (0, 0), 1.0, 2.0)
    _ok_job(grid / "1", _config("poisson", "rsvi", 0), [1, 1, 1, 1], [2.0] * 4, -9.0, (0, 0), 1.0, 2.0)
    argv = ["--out", str(tmp_path), "--table-only", "--likelihoods", "gaussian,poisson", "--samplers", "rsvi"]
    assert compare.main(argv) == 0
    payload = json.loads((tmp_path / "table.json").read_text())
    assert [(r["likelihood"], r["noise_var"], r["status"]) for r in payload["rows"]] == [
        ("gaussian", 0.3, "ok"),
        ("poisson", None, "ok"),
    ]
    assert payload["settings"]["gaussian_noise_var"] == "the config's (0.3)"
    assert "--gaussian-noise-var" not in payload["command"]


def test_dry_run_sweeping_noise_var_splits_the_gaussian_multirun(compare, tmp_path, capsys):
    argv = [
        "--dry-run",
        "--out",
        str(tmp_path),
        "--gaussian-noise-var",
        "0.1,1",
        "--samplers",
        "rsvi",
        "--separator",
        "mu",
        "--seeds",
        "0,1",
    ]
    assert compare.main(argv) == 0
    printed = [line for line in capsys.readouterr().out.strip().splitlines() if not line.startswith("#")]
    assert len(printed) == 2
    assert "model.system.likelihood=gaussian ++model.system.noise_var=0.1,1" in printed[0]
    assert "model.system.likelihood=poisson,exponential" in printed[1] and "noise_var" not in printed[1]
    assert all("seed=0,1" in p and "separator=mu" in p for p in printed)


def test_thread_pinning(compare, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert compare.sweep_env(1)["OMP_NUM_THREADS"] == "1" and compare.sweep_env(1)["MKL_NUM_THREADS"] == "1"
    assert compare.sweep_env(0)["OMP_NUM_THREADS"] == "7"
    assert "--threads 2" in compare.regenerate_command(compare.parse_args(["--threads", "2"]))
    assert "--threads" not in compare.regenerate_command(compare.parse_args([]))


def test_existing_sweep_needs_overwrite(compare, tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "Popen", _no_subprocess)
    (tmp_path / "sweeps" / "grid").mkdir(parents=True)
    assert compare.main(["--out", str(tmp_path)]) == 2


def test_bad_arguments(compare):
    with pytest.raises(SystemExit):
        compare.parse_args(["--likelihoods", "gauss"])
    with pytest.raises(SystemExit):
        compare.parse_args(["--gaussian-noise-var", "-1"])
