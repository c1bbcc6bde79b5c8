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


def test_every_sweep_composes_into_the_methods_of_the_paper():
    script = _script()
    methods = {}
    for experiment, sweeps in script.SWEEPS.items():
        for suffix, extra in sweeps.items():
            with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
                cfg = compose(
                    "train", overrides=[f"experiment={experiment}", *extra], return_hydra_config=True
                )
            grid = dict(cfg.hydra.sweeper.params)
            grid.update(
                dict(item.split("=", 1) for item in extra)
            )  # the command line replaces the grid's value
            methods[experiment + suffix] = set(grid["model"].split(","))
    assert methods["table1"] == methods["table2"] == {"nmf", "vae_nmf"}
    assert methods["table1_dnmf"] == {"dnmf"} and methods["table1_drnn"] == {"drnn"}
    assert methods["fig2_vaf"] == {"nmf_synergy", "vae_nmf_synergy"}


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
