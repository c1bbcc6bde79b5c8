"""`make reproduce` (scripts/reproduce.py): its sweeps compose, and overrides reach only the jobs they fit."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from vaenmf.train import CONFIG_DIR, REPO_ROOT


def _script():
    spec = importlib.util.spec_from_file_location("reproduce", REPO_ROOT / "scripts" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reproduce_is_one_multirun_per_artefact_and_names_no_method():
    script = _script()
    assert set(script.EXPERIMENTS) == {"table1", "table2", "fig2_vaf"}
    source = (REPO_ROOT / "scripts" / "reproduce.py").read_text()
    for method in ("nmf", "dnmf", "drnn", "vae_nmf", "separator", "model="):
        assert f"{method}" not in source.replace("vaenmf", "").replace("ninapro", "")
    tasks = {}
    for experiment in script.EXPERIMENTS:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
        tasks[experiment] = (cfg.task, set(cfg.hydra.sweeper.params.method.split(",")))
    assert (
        tasks["table1"]
        == tasks["table2"]
        == (
            "speech",
            {"nmf", "dnmf", "drnn", "vae_nmf", "nmf_dnn", "vae_nmf_mu"},
        )
    )
    assert tasks["fig2_vaf"] == ("synergy", {"nmf", "vae_nmf"})


def test_prefixed_overrides_reach_only_their_experiments():
    script = _script()
    given = [
        "seed=1",
        "speech:data.n_test_utterances=4",
        "fig2_vaf:data.subjects=[1]",
        "paths.data_root=/a:b",
    ]
    assert script.overrides_for("table1", given) == [
        "seed=1",
        "data.n_test_utterances=4",
        "paths.data_root=/a:b",
    ]
    assert script.overrides_for("fig2_vaf", given) == ["seed=1", "data.subjects=[1]", "paths.data_root=/a:b"]


def test_unknown_prefix_is_one_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _script().main(["--experiments", "table1", "tabel1:seed=3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown prefix 'tabel1'" in err and err.count("\n") == 1


def test_dry_run_prints_every_sweep_once_per_seed_and_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VAENMF_WANDB_GROUP", raising=False)
    out = tmp_path / "study"
    assert (
        _script().main(
            ["--dry-run", "--seeds", "0,1,2", "--out", str(out), "speech:data.n_test_utterances=2"]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    sweeps = [line for line in lines if line.startswith("=== ") and "vaenmf.train -m" in line]
    assert [line.split(":")[0] for line in sweeps] == ["=== table1", "=== table2", "=== fig2_vaf"]
    for line in sweeps:
        assert " seed=0,1,2 " in f"{line} " and f"hydra.sweep.dir={out / 'sweeps'}" in line
    assert "data.n_test_utterances=2" in sweeps[0] and "data.n_test_utterances" not in sweeps[2]
    assert any(line.startswith("=== report: vaenmf.report.cli") for line in lines)
    assert "seeds 0,1,2; W&B group reproduce-" in lines[0]
    assert not out.exists()  # a dry run writes nothing, not even the group file


def test_make_reproduce_passes_seeds_to_the_script(tmp_path):
    """`make reproduce SEEDS=0,1,2` reaches every sweep as seed=0,1,2 (the script in --dry-run, through make)."""
    stamp = tmp_path / "installed"
    stamp.write_text("")  # newer than pyproject.toml: make does not install anything
    result = subprocess.run(
        # fmt: off
        [
            "make",
            "-s",
            "-C",
            str(REPO_ROOT),
            "reproduce",
            "SEEDS=0,1,2",
            f"OUT={tmp_path / 'out'}",
            "ARGS=--dry-run",
            f"BIN={Path(sys.executable).parent}",
            f"STAMP={stamp}",
        ],
        # fmt: on
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "VAENMF_WANDB_GROUP": "g"},
    )
    assert result.returncode == 0, result.stderr
    sweeps = [line for line in result.stdout.splitlines() if "vaenmf.train -m" in line]
    assert len(sweeps) == 3 and all("seed=0,1,2" in line for line in sweeps), result.stdout
    assert "W&B group g" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--experiments", "table1,tabel1"],
            "unknown experiment 'tabel1'; choose from table1, table2, fig2_vaf",
        ),
        (["--seeds", "0,one"], "--seeds '0,one': expected comma-separated integers"),
    ],
)
def test_bad_experiment_or_seeds_is_one_line_before_any_sweep(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        _script().main([*args, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # nothing ran


def test_the_study_keeps_one_wandb_group_across_reruns(tmp_path, monkeypatch):
    monkeypatch.delenv("VAENMF_WANDB_GROUP", raising=False)
    script = _script()
    first = script.wandb_group(tmp_path, record=True)
    assert first.startswith("reproduce-") and script.wandb_group(tmp_path, record=True) == first
    monkeypatch.setenv("VAENMF_WANDB_GROUP", "mine")
    assert script.wandb_group(tmp_path, record=True) == "mine"
