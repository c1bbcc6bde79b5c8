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


#: Each method's components, read off the composed config (the pairing lives in conf/method/ only).
PAPER = {
    "nmf": ("NMF", {"dictionary": "nmf", "activations": "mu"}),
    "dnmf": ("DNMF", {"dictionary": "nmf", "reconstruction": "dnmf", "activations": "mu"}),
    "drnn": ("DNN", {"network": "drnn"}),
    "vae_nmf": ("VAE-NMF", {"dictionary": "vae_nmf", "activations": "dnn"}),
    "nmf_dnn": (None, {"dictionary": "nmf", "activations": "dnn"}),
    "vae_nmf_mu": (None, {"dictionary": "vae_nmf", "activations": "mu"}),
}


@pytest.mark.parametrize("method", sorted(PAPER))
def test_each_method_composes_its_components_in_the_speech_task(method):
    from vaenmf.jobfile import job_identity

    identity = job_identity(_compose([f"method={method}"]))
    assert identity["method"] == method and identity["task"] == "speech"
    assert (identity["paper_column"], identity["components"]) == PAPER[method]


def test_synergy_task_brings_its_data_and_rank_four_settings_and_no_speech_keys():
    for method, beta in (("nmf", 2.0), ("vae_nmf", None)):
        cfg = _compose(["task=synergy", f"method={method}"])
        assert cfg.data._target_.endswith("SynergyDataModule") and cfg.dictionary.rank == 4
        assert not {"noise", "activations", "reconstruction", "network"} & set(cfg)
        if beta is not None:
            assert cfg.dictionary.system.beta == beta
    speech = _compose(["method=nmf"])
    assert speech.dictionary.rank == 40 and "synergy" not in speech
    # The rank is set once: the systems receive it from the dictionary node, they have no key of their own.
    assert (
        "rank" not in speech.dictionary.system
        and "rank" not in _compose(["method=vae_nmf"]).dictionary.system
    )


def test_counters_are_named_for_what_they_count():
    assert "mu_iterations" in _compose(["method=nmf"]).dictionary
    assert "epochs" in _compose(["method=vae_nmf"]).dictionary
    assert "epochs" in _compose(["method=vae_nmf"]).activations
    assert "mu_iterations" in _compose(["method=nmf"]).activations
    assert {"epochs"} <= set(_compose(["method=drnn"]).network)


def test_struct_mode_rejects_unknown_keys():
    with pytest.raises(ConfigCompositionException, match="rnak"):
        _compose(["dictionary.rnak=3"])


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ConfigCompositionException) as err:
        _compose(["method=nnmf"])
    for name in PAPER:
        assert name in str(err.value)


def test_experiment_files_declare_their_whole_grid():
    cfg = _compose(["experiment=table1"], hydra=True)
    params = cfg.hydra.sweeper.params
    assert set(params.method.split(",")) == set(PAPER)
    assert params.noise == "factory,babble"
    table2 = _compose(["experiment=table2"], hydra=True)
    assert table2.noise == "pooled" and set(table2.hydra.sweeper.params.method.split(",")) == set(PAPER)
    fig2 = _compose(["experiment=fig2_vaf"], hydra=True)
    assert fig2.task == "synergy" and fig2.hydra.sweeper.params.method == "nmf,vae_nmf"
    assert fig2.data._target_.endswith("SynergyDataModule")


def test_command_line_value_replaces_the_experiment_sweep():
    """`-m experiment=table1 method=nmf,vae_nmf` narrows the grid; `seed=0,1` extends it."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = _compose(["experiment=table1"], hydra=True)
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    # BasicSweeper.sweep appends the command line to the config's params, in this order.
    overrides = OverridesParser.create().parse_overrides([*params, "method=nmf,vae_nmf", "seed=0,1"])
    jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
    assert len(jobs) == 8
    assert {tuple(sorted(j)) for j in jobs} == {
        (f"method={m}", f"noise={n}", f"seed={s}")
        for m in ("nmf", "vae_nmf")
        for n in ("factory", "babble")
        for s in (0, 1)
    }


@pytest.mark.parametrize(
    "args, message",
    [
        (["model=vae_nmf"], "model= is no longer a key: use method="),
        (["model.rank=20"], "dictionary.<key>"),
        (["separator=dnn"], "activations.<key>"),
        (["activations=dnn"], "part of the method"),
        (["dictionary=vae_nmf"], "part of the method"),
        (["task=synergy", "noise=babble"], "noise= is a key of task=speech"),
        (["experiment=fig2_vaf", "activations.mu_iterations=3"], "is a key of task=speech"),
        (["synergy.figure_subject=2"], "is a key of task=synergy"),
        (["task=synergy", "eval_split=validation"], "eval_split= is a key of task=speech"),
    ],
)
def test_command_line_checks_name_the_new_key(args, message):
    from vaenmf.train import check_command_line

    assert message in (check_command_line(["-m", *args]) or "")


def test_command_line_checks_pass_good_overrides():
    from vaenmf.train import check_command_line

    assert check_command_line(["-m", "experiment=table1", "method=nmf,vae_nmf", "dictionary.rank=20"]) is None
    assert (
        check_command_line(["experiment=fig2_vaf", "synergy.figure_subject=2", "dictionary.epochs=3"]) is None
    )
    assert check_command_line(["--cfg", "job", "noise=babble", "hydra.run.dir=/tmp/x"]) is None


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
