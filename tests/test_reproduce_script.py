"""`make reproduce` (scripts/reproduce.py): its sweeps compose, and overrides reach only the jobs they fit."""

from __future__ import annotations

import importlib.util

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
    assert "unknown prefix 'tabel1'" in capsys.readouterr().err
