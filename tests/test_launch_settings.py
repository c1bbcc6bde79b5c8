"""DDP/SLURM launch settings (``vaenmf.cluster``): derived from the trainer, refused with one message when they
disagree. No SLURM needed: the configs are composed, the SLURM environment is a dict, and the command-line
refusal happens before anything is submitted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from vaenmf.cluster import check_launch_settings, gpus_per_node, num_devices
from vaenmf.cluster.launcher import finished_job
from vaenmf.errors import ConfigError
from vaenmf.train import CONFIG_DIR


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def _problem(*overrides: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        check_launch_settings(_compose(*overrides), environ=environ or {})
    return str(info.value)


@pytest.mark.parametrize(
    ("devices", "expected"),
    [(1, 1), (4, 4), ("2", 2), ([0, 1], 2), ("0,1,", 2), ("auto", None), (-1, None), (0, None), (True, None)],
)
def test_num_devices(devices, expected):
    assert num_devices(devices) == expected


def test_gpu_request_follows_the_accelerator():
    assert gpus_per_node("gpu", 4) == 4 and gpus_per_node("cuda", [0, 1]) == 2
    assert (
        gpus_per_node("cpu", 4) is None
    )  # no --gpus-per-node at all: a CPU-only cluster rejects a GPU request


@pytest.mark.parametrize(
    ("overrides", "tasks", "gpus", "nodes"),
    [
        (["trainer=cpu"], 1, None, 1),
        (["trainer=gpu"], 1, 1, 1),
        (["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"], 4, 4, 2),
        (["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"], 2, None, 1),
    ],
)
def test_cpu_and_gpu_clusters_are_the_same_keys(overrides, tasks, gpus, nodes):
    cfg = _compose("launcher=slurm", *overrides)
    launcher = cfg.hydra.launcher
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (tasks, gpus, nodes)
    assert cfg.trainer.get("sync_batchnorm", False) is (gpus is not None and tasks > 1)
    check_launch_settings(cfg, environ={})  # consistent: no error


def test_tasks_per_node_must_match_devices():
    message = _problem(
        "launcher=slurm", "trainer=ddp", "trainer.devices=4", "hydra.launcher.tasks_per_node=2"
    )
    assert "hydra.launcher.tasks_per_node=2 but trainer.devices=4" in message


def test_gpus_on_a_cpu_trainer_are_refused():
    message = _problem("launcher=slurm", "trainer=cpu", "hydra.launcher.gpus_per_node=2")
    assert "hydra.launcher.gpus_per_node asks for GPUs but trainer.accelerator=cpu" in message
    message = _problem("launcher=slurm", "trainer=cpu", "hydra.launcher.gres=gpu:a100:1")
    assert "hydra.launcher.gres asks for GPUs" in message


def test_a_gpu_trainer_needs_its_gpus():
    message = _problem(
        "launcher=slurm", "trainer=ddp", "trainer.devices=2", "hydra.launcher.gpus_per_node=null"
    )
    assert (
        "trainer.accelerator=gpu with trainer.devices=2 needs 2 GPU(s) per node, but the job asks for 0"
        in message
    )


def test_ddp_on_one_process_is_refused_under_slurm():
    message = _problem("launcher=slurm", "trainer=ddp", "trainer.devices=1")
    assert (
        "trainer.strategy=ddp with trainer.devices=1 and trainer.num_nodes=1 is a single process" in message
    )
    check_launch_settings(
        _compose("launcher=slurm", "trainer=ddp", "trainer.devices=1", "trainer.num_nodes=2")
    )


def test_nodes_must_match_num_nodes():
    message = _problem("launcher=slurm", "trainer=ddp", "trainer.devices=2", "hydra.launcher.nodes=3")
    assert "hydra.launcher.nodes=3 but trainer.num_nodes=1" in message


def test_spawning_strategies_and_unknown_counts_are_refused_under_slurm():
    assert "trainer.strategy=ddp_spawn starts its own processes" in _problem(
        "launcher=slurm", "trainer=ddp_sim"
    )
    assert "trainer.devices='auto'" in _problem("launcher=slurm", "trainer.devices=auto")
    assert "trainer.accelerator=auto" in _problem("launcher=slurm", "trainer.accelerator=auto")


def test_every_problem_is_named_in_one_message():
    message = _problem(
        "launcher=slurm",
        "trainer=cpu",
        "trainer.devices=2",
        "hydra.launcher.tasks_per_node=1",
        "hydra.launcher.gpus_per_node=1",
    )
    assert message.startswith("inconsistent DDP/SLURM settings: (1) ")
    assert "hydra.launcher.tasks_per_node=1" in message and "hydra.launcher.gpus_per_node" in message


def test_local_runs_are_not_held_to_slurm_rules():
    check_launch_settings(_compose("trainer=ddp_sim"), environ={})
    check_launch_settings(_compose("trainer=ddp", "trainer.devices=1"), environ={})


def test_the_slurm_step_must_match_the_trainer():
    step = {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1", "SLURM_JOB_NAME": "train"}
    message = _problem("trainer=cpu", environ=step)
    assert "runs 2 task(s) per node (--ntasks-per-node) but trainer.devices=1" in message
    assert "--nodes" in _problem("trainer=ddp", "trainer.devices=2", environ={**step, "SLURM_NNODES": "2"})
    assert "starts its own processes, but srun already started 2" in _problem("trainer=ddp_sim", environ=step)
    check_launch_settings(
        _compose("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"), environ=step
    )
    # An interactive allocation (srun --job-name=interactive) is Lightning's way out of SLURM detection.
    check_launch_settings(_compose("trainer=cpu"), environ={**step, "SLURM_JOB_NAME": "interactive"})


def _cli(args: list[str], tmp_path, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_ERROR_REPORTING": "false", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "vaenmf.train", *args],
        cwd=tmp_path,
        env={**env, **env_extra},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sweep_is_refused_before_anything_is_submitted(tmp_path):
    """The launcher checks every job of the sweep in the submitting process; sbatch is never reached (a
    SLURM_CONF that does not exist would make it fail if it were)."""
    sweep = tmp_path / "sweep"
    result = _cli(
        [
            "-m",
            "launcher=slurm",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2,4",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
        {"SLURM_CONF": str(tmp_path / "no-such-slurm.conf")},
    )
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("vaenmf-train: error: job #0 (launcher=slurm ")
    assert "trainer.devices=2): inconsistent DDP/SLURM settings:" in lines[0]
    # The request was resolved once for the sweep (from trainer=ddp's devices: 4): sweeping devices is refused.
    assert "hydra.launcher.tasks_per_node=4 but trainer.devices=2" in lines[0]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert not (sweep / ".submitit").exists()


def test_a_job_in_a_mismatched_slurm_step_stops_before_any_work(tmp_path):
    out = tmp_path / "job"
    result = _cli(
        ["trainer=cpu", f"hydra.run.dir={out}"],
        tmp_path,
        {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1", "SLURM_JOB_NAME": "train"},
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("vaenmf-train: error: inconsistent DDP/SLURM settings")
    )
    assert "Traceback" not in result.stderr
    # Recorded as a failed job (so a report shows the hole), before any work: no config.yaml, no checkpoint.
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "inconsistent DDP/SLURM settings" in metrics["error"]
    assert not (out / "config.yaml").exists() and not (out / "checkpoints").exists()


def test_finished_jobs_are_recognised_by_status_config_hash_and_commit(tmp_path):
    assert finished_job(tmp_path, "h", "c") == (False, "no metrics.json")
    (tmp_path / "metrics.json").write_text(
        json.dumps({"status": "ok", "config_hash": "h", "git_commit": "c"})
    )
    assert finished_job(tmp_path, "h", "c") == (True, "finished")
    assert finished_job(tmp_path, "other", "c")[1].startswith("config changed")
    assert finished_job(tmp_path, "h", "other")[1].startswith("code changed")
    (tmp_path / "metrics.json").write_text(
        json.dumps({"status": "failed", "config_hash": "h", "git_commit": "c"})
    )
    assert finished_job(tmp_path, "h", "c") == (False, "status 'failed'")
    (tmp_path / "metrics.json").write_text("{")
    assert finished_job(tmp_path, "h", "c")[1].startswith("unreadable metrics.json")
