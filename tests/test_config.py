"""The config tree composes as users expect (Hydra compose API, no job run)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from vaenmf.train import CONFIG_DIR


def _compose(overrides: list[str], hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=hydra)


def test_slurm_launcher_takes_tasks_and_gpus_from_trainer_devices():
    cfg = _compose(["launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"], hydra=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert cfg.hydra.launcher.tasks_per_node == 4 and cfg.hydra.launcher.gpus_per_node == 4
    assert cfg.hydra.launcher.nodes == 2
    assert cfg.trainer.strategy == "ddp"


def test_vae_nmf_defaults_to_the_dnn_separator_and_command_line_wins():
    assert _compose(["model=vae_nmf"]).separator.name == "dnn"
    assert _compose(["model=vae_nmf", "separator=mu"]).separator.name == "mu"
    assert _compose(["model=nmf"]).separator.name == "mu"


def test_struct_mode_rejects_unknown_keys():
    with pytest.raises(ConfigCompositionException, match="rnak"):
        _compose(["model.rnak=3"])


def test_experiment_files_declare_their_sweeps():
    cfg = _compose(["experiment=table1"], hydra=True)
    params = cfg.hydra.sweeper.params
    assert params.model == "nmf,vae_nmf" and params.separator == "mu,dnn"
    assert params.noise == "factory,babble"
    assert _compose(["experiment=table2"]).noise == "pooled"


def test_command_line_value_replaces_the_experiment_sweep():
    """`make reproduce` runs the DNMF and DRNN columns as `-m experiment=table1 model=drnn separator=drnn`."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = _compose(["experiment=table1"], hydra=True)
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    # BasicSweeper.sweep appends the command line to the config's params, in this order.
    overrides = OverridesParser.create().parse_overrides([*params, "model=drnn", "separator=drnn"])
    jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
    assert sorted(tuple(sorted(j)) for j in jobs) == [
        ("model=drnn", "noise=babble", "separator=drnn"),
        ("model=drnn", "noise=factory", "separator=drnn"),
    ]


def test_slurm_leaves_requeueing_to_submitit():
    """PITFALLS: submitit preempts with USR2 and requeues; Lightning must not requeue too."""
    from hydra.utils import instantiate
    from pytorch_lightning.plugins.environments import SLURMEnvironment

    cfg = _compose(["launcher=slurm", "trainer=cpu"])
    (plugin,) = cfg.trainer.plugins
    environment = instantiate(plugin)
    assert isinstance(environment, SLURMEnvironment) and environment.auto_requeue is False
    trainer = instantiate(cfg.trainer, max_epochs=1, logger=False, enable_progress_bar=False)
    assert trainer.max_epochs == 1
    assert "plugins" not in _compose(["trainer=cpu"]).trainer  # local runs keep Lightning's defaults
