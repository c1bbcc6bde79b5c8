"""What one Hydra job does: a registry of tasks by name (``task=speech``, ``task=synergy``) and the checks that a
job's method and data suit its task, made before any work starts."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vaenmf.errors import ConfigError


@dataclass(frozen=True)
class TaskSpec:
    """A task: the module whose ``run(cfg, job)`` it is, the data module it reads, and how a user selects that."""

    module: str
    datamodule: str
    data_options: str
    what: str


TASKS: dict[str, TaskSpec] = {
    "speech": TaskSpec(
        "vaenmf.tasks.speech",
        "vaenmf.data.speech.SpeechDataModule",
        "data=speech_demo, data=speech_timit or data=speech_folder",
        "speech enhancement (Tables 1-2)",
    ),
    "synergy": TaskSpec(
        "vaenmf.tasks.synergy",
        "vaenmf.data.synergy.SynergyDataModule",
        "data=emg_demo or data=ninapro_db1",
        "muscle synergies (Figure 2)",
    ),
}


def get_task(name: str) -> Callable[..., dict[str, Any]]:
    """The ``run(cfg, job)`` function of the task called ``name``."""
    if name not in TASKS:
        raise ConfigError(f"task must be one of {sorted(TASKS)}, got {name!r}")
    return importlib.import_module(TASKS[name].module).run


def methods_of_task(task: str, config_dir: Path) -> list[str]:
    """The methods whose ``conf/method/<name>.yaml`` lists ``task`` in ``method.tasks``."""
    names = []
    for path in sorted(Path(config_dir, "method").glob("*.yaml")):
        node = OmegaConf.load(path).get("method") or {}
        if task in (node.get("tasks") or ()):
            names.append(path.stem)
    return names


def check_job_config(cfg: DictConfig, config_dir: Path | None = None) -> None:
    """Refuse, with one message, a job whose method or data does not suit its task (before any work).

    Args:
        cfg: The composed job config.
        config_dir: The config tree, to list the methods a task runs (default: the repository's ``conf/``).

    Raises:
        ConfigError: Unknown task; a method that does not run in the task; data of another task.
    """
    from hydra.utils import get_class

    task = str(cfg.get("task"))
    if task not in TASKS:
        raise ConfigError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    spec = TASKS[task]
    method = cfg.get("method")
    if method is None or "name" not in method:
        raise ConfigError("the job has no method; choose one with method=<name> (conf/method/)")
    if task not in (method.get("tasks") or ()):
        if config_dir is None:
            from vaenmf.tasks.runtime import REPO_ROOT

            config_dir = REPO_ROOT / "conf"
        runs = ", ".join(f"method={name}" for name in methods_of_task(task, config_dir)) or "no method"
        raise ConfigError(
            f"method={method.name} does not run in task={task} ({spec.what}); task={task} runs {runs}"
        )
    target = (cfg.get("data") or {}).get("_target_")
    try:
        data_class = get_class(str(target))
    except Exception:
        data_class = None
    expected = get_class(spec.datamodule)
    if data_class is None or not issubclass(data_class, expected):
        raise ConfigError(
            f"task={task} ({spec.what}) reads its data with {spec.datamodule}; data._target_ is {target!r}. "
            f"Use {spec.data_options}"
        )
    _check_resolves(cfg)


def _check_resolves(cfg: DictConfig) -> None:
    """Every interpolation of the job's config resolves (``hydra`` aside), or one message naming the key."""
    from omegaconf.errors import OmegaConfBaseException

    for key in cfg:
        if key == "hydra":
            continue
        try:
            OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
        except OmegaConfBaseException as err:
            raise ConfigError(f"config key {key!r} cannot be resolved: {err}".splitlines()[0]) from None
