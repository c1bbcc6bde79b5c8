"""Launch settings of multi-process (DDP) and SLURM jobs: derived from the trainer, checked before any work.

One set of keys drives both Lightning and SLURM: ``trainer.accelerator``, ``trainer.devices`` and
``trainer.num_nodes``. ``conf/hydra/launcher/slurm.yaml`` derives the SLURM request from them with the
resolvers registered here:

- ``tasks_per_node`` = the number of devices (srun starts one process per device, as Lightning DDP expects);
- ``gpus_per_node`` = the number of devices on a GPU trainer, and no GPU request at all on a CPU trainer (a
  CPU-only cluster rejects a job that asks for GPUs);
- ``nodes`` = ``trainer.num_nodes``.

``conf/trainer/ddp.yaml`` turns ``sync_batchnorm`` on for GPUs only (torch's SyncBatchNorm has no CPU kernel).

:func:`check_launch_settings` refuses the combinations that cannot work, with one :class:`ConfigError` that
names the keys: it runs at the top of every job (``vaenmf.train.run_job``) and, for a sweep submitted with
``launcher=slurm``, in the submitting process for every job of the sweep before anything is submitted
(:mod:`vaenmf.cluster.launcher`).

Importing this module also silences one Lightning warning on machines that have SLURM installed: "The
`srun` command is available on your system but is not used", which Lightning prints for every local job.
It is kept inside a SLURM allocation (``SLURM_JOB_ID`` set), where it points at a real mistake.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from vaenmf.errors import ConfigError

__all__ = ["check_launch_settings", "gpus_per_node", "num_devices", "on_gpu"]

#: Accelerators that mean "one CUDA GPU per device".
GPU_ACCELERATORS = ("gpu", "cuda")
#: Strategies that start their own processes; under srun the processes already exist.
SPAWNING_STRATEGIES = ("ddp_spawn", "ddp_fork", "ddp_notebook")


def num_devices(devices: Any) -> int | None:
    """The number of processes per node that ``trainer.devices`` asks for, or None when it does not say
    (``"auto"``, ``-1``): an int, a digit string, a list of device indices or a comma-separated string of them."""
    if isinstance(devices, bool):
        return None
    if isinstance(devices, int):
        return devices if devices > 0 else None
    if isinstance(devices, (list, tuple, ListConfig)):
        return len(devices) or None
    if isinstance(devices, str):
        text = devices.strip()
        if re.fullmatch(r"\d+", text):
            return int(text) or None
        if re.fullmatch(r"\d+(\s*,\s*\d+)*\s*,?", text):
            return len([part for part in text.split(",") if part.strip()])
    return None


def on_gpu(accelerator: Any) -> bool:
    """Whether ``trainer.accelerator`` places each device on a CUDA GPU."""
    return str(accelerator).lower() in GPU_ACCELERATORS


def gpus_per_node(accelerator: Any, devices: Any) -> int | None:
    """GPUs to request per node: one per device on a GPU trainer; None (no ``--gpus-per-node``) otherwise."""
    return num_devices(devices) if on_gpu(accelerator) else None


def _tasks_per_node(devices: Any) -> int:
    # An unknown count ("auto") resolves to 1 so that the config composes; check_launch_settings refuses it.
    return num_devices(devices) or 1


def _register_resolvers() -> None:
    for name, fn in (
        ("vaenmf.tasks_per_node", _tasks_per_node),
        ("vaenmf.gpus_per_node", gpus_per_node),
        ("vaenmf.on_gpu", on_gpu),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


_register_resolvers()

if "SLURM_JOB_ID" not in os.environ:
    warnings.filterwarnings(
        "ignore", message=r"The `srun` command is available on your system but is not used"
    )


# -- checks ---------------------------------------------------------------------------------------------------
def _get(node: Any, key: str, default: Any = None) -> Any:
    if node is None:
        return default
    if isinstance(node, DictConfig):
        return OmegaConf.select(node, key, default=default)
    if isinstance(node, Mapping):
        return node.get(key, default)
    return getattr(node, key, default)


def is_slurm_launcher(launcher: Any) -> bool:
    """Whether a ``hydra.launcher`` node (config or the submitit launcher's resolved parameters) submits to SLURM."""
    target = str(_get(launcher, "_target_", "") or "")
    return target.split(".")[-1] == "SlurmLauncher"


def _strategy_name(strategy: Any) -> str:
    if isinstance(strategy, str):
        return strategy.lower()
    target = _get(strategy, "_target_")
    return str(target).split(".")[-1].lower() if target else ""


def _gres_gpus(gres: Any) -> int | None:
    """GPUs in a ``--gres`` string such as ``gpu:4`` or ``gpu:a100:2`` (None when it asks for none)."""
    if not gres:
        return None
    for item in str(gres).split(","):
        parts = item.strip().split(":")
        if parts[0] == "gpu":
            return int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
    return None


def launcher_problems(trainer: Any, launcher: Any) -> list[str]:
    """What is inconsistent between the trainer and the SLURM request of ``launcher`` (empty: nothing)."""
    problems: list[str] = []
    accelerator = str(_get(trainer, "accelerator", "auto")).lower()
    devices = _get(trainer, "devices", 1)
    n_devices = num_devices(devices)
    num_nodes = int(_get(trainer, "num_nodes", 1) or 1)
    strategy = _strategy_name(_get(trainer, "strategy", "auto"))
    tasks = _get(launcher, "tasks_per_node")
    nodes = _get(launcher, "nodes")
    gpus_node = _get(launcher, "gpus_per_node")
    gpus_task = _get(launcher, "gpus_per_task")
    gres_gpus = _gres_gpus(_get(launcher, "gres"))

    if n_devices is None:
        problems.append(
            f"trainer.devices={devices!r}: under launcher=slurm it must be the number of processes per node "
            "(an integer), because srun starts hydra.launcher.tasks_per_node = trainer.devices processes"
        )
    elif tasks is not None and int(tasks) != n_devices:
        problems.append(
            f"hydra.launcher.tasks_per_node={tasks} but trainer.devices={devices}: srun starts one process per "
            "device, so they must be equal (drop the hydra.launcher.tasks_per_node override; it follows "
            "trainer.devices)"
        )
    if nodes is not None and int(nodes) != num_nodes:
        problems.append(
            f"hydra.launcher.nodes={nodes} but trainer.num_nodes={num_nodes}: they must be equal (drop the "
            "hydra.launcher.nodes override; it follows trainer.num_nodes)"
        )
    requested: int | None = None
    for value in (gpus_node, gres_gpus):
        if value:
            requested = int(value)
            break
    else:
        if gpus_task and tasks:
            requested = int(gpus_task) * int(tasks)
    if accelerator == "cpu" and requested:
        asked = "hydra.launcher." + (
            "gpus_per_node" if gpus_node else "gres" if gres_gpus else "gpus_per_task"
        )
        problems.append(
            f"{asked} asks for GPUs but trainer.accelerator=cpu: a CPU job must not request GPUs (drop the "
            f"{asked} override, or use a GPU trainer: trainer=gpu, or trainer=ddp with trainer.accelerator=gpu)"
        )
    elif on_gpu(accelerator) and n_devices is not None and requested != n_devices:
        problems.append(
            f"trainer.accelerator={accelerator} with trainer.devices={devices} needs {n_devices} GPU(s) per node, "
            f"but the job asks for {requested or 0} (hydra.launcher.gpus_per_node={gpus_node}); drop the "
            "hydra.launcher.gpus_per_node override, it follows trainer.devices"
        )
    elif accelerator == "auto":
        problems.append(
            "trainer.accelerator=auto under launcher=slurm: say trainer.accelerator=cpu or gpu, because the GPU "
            "request (hydra.launcher.gpus_per_node) depends on it"
        )
    if strategy in SPAWNING_STRATEGIES or strategy.endswith("_spawn"):
        problems.append(
            f"trainer.strategy={strategy} starts its own processes, but under launcher=slurm srun starts them "
            "(one per device): use trainer=ddp (strategy=ddp) with the launcher; trainer=ddp_sim is for local runs"
        )
    elif (
        strategy.startswith(("ddp", "fsdp", "deepspeed"))
        and n_devices is not None
        and n_devices * num_nodes == 1
    ):
        problems.append(
            f"trainer.strategy={strategy} with trainer.devices={devices} and trainer.num_nodes={num_nodes} is a "
            "single process: set trainer.devices to the devices per node (and trainer.num_nodes to the nodes), "
            "or use trainer=cpu / trainer=gpu for one device"
        )
    return problems


def environment_problems(trainer: Any, environ: Mapping[str, str]) -> list[str]:
    """What is inconsistent between the trainer and the SLURM step this process runs in (empty outside srun).

    Lightning detects a SLURM step by ``SLURM_NTASKS`` (and a job name other than ``bash``/``interactive``)
    and then expects one task per device; it would raise the same mismatch later, after the data are loaded.
    """
    if "SLURM_NTASKS" not in environ or environ.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return []
    problems: list[str] = []
    devices = _get(trainer, "devices", 1)
    n_devices = num_devices(devices)
    num_nodes = int(_get(trainer, "num_nodes", 1) or 1)
    strategy = _strategy_name(_get(trainer, "strategy", "auto"))
    ntasks = int(environ.get("SLURM_NTASKS", "1") or 1)
    per_node = environ.get("SLURM_NTASKS_PER_NODE")
    nnodes = environ.get("SLURM_NNODES") or environ.get("SLURM_JOB_NUM_NODES")
    if per_node and per_node.isdigit() and n_devices is not None and int(per_node) != n_devices:
        problems.append(
            f"this SLURM step runs {per_node} task(s) per node (--ntasks-per-node) but trainer.devices={devices}: "
            "Lightning needs one task per device (set trainer.devices, or the tasks per node, to the same number)"
        )
    if nnodes and nnodes.isdigit() and int(nnodes) != num_nodes:
        problems.append(
            f"this SLURM job has {nnodes} node(s) (--nodes) but trainer.num_nodes={num_nodes}: they must be equal"
        )
    if ntasks > 1 and (strategy in SPAWNING_STRATEGIES or strategy.endswith("_spawn")):
        problems.append(
            f"trainer.strategy={strategy} starts its own processes, but srun already started {ntasks}: use "
            "strategy=ddp (trainer=ddp) under srun"
        )
    return problems


def _hydra_launcher(cfg: Any) -> Any:
    if isinstance(cfg, DictConfig) and "hydra" in cfg:
        return OmegaConf.select(cfg, "hydra.launcher")
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return HydraConfig.get().launcher
    return None


def check_launch_settings(
    cfg: Any, launcher: Any = None, environ: Mapping[str, str] | None = None, context: str = ""
) -> None:
    """Refuse inconsistent DDP and SLURM settings before any work, with one message that names the keys.

    Checked when the job is submitted by the SLURM launcher (``launcher``, default ``hydra.launcher`` of the
    config or of the running Hydra job): tasks per node = ``trainer.devices``, nodes = ``trainer.num_nodes``,
    no GPU request on a CPU trainer and one GPU per device on a GPU trainer, no process-spawning strategy, no DDP
    strategy on a single process. Checked when this process runs in a SLURM step (``environ``, default
    ``os.environ``): the step's tasks per node and nodes match the trainer.

    Args:
        cfg: The job's config (its ``trainer`` node; ``hydra`` when composed with it).
        launcher: A ``hydra.launcher`` node or the submitit launcher's parameters; default: from ``cfg``/Hydra.
        environ: Environment variables (default ``os.environ``).
        context: Prefix of the message (e.g. which job of a sweep).

    Raises:
        ConfigError: Naming every inconsistent key.
    """
    trainer = _get(cfg, "trainer")
    if trainer is None:
        return
    launcher = _hydra_launcher(cfg) if launcher is None else launcher
    problems: list[str] = []
    if launcher is not None and is_slurm_launcher(launcher):
        problems += launcher_problems(trainer, launcher)
    problems += environment_problems(trainer, os.environ if environ is None else environ)
    if problems:
        head = f"{context}: " if context else ""
        if len(problems) == 1:
            raise ConfigError(f"{head}inconsistent DDP/SLURM settings: {problems[0]}")
        listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
        raise ConfigError(f"{head}inconsistent DDP/SLURM settings: {listed}")
