"""Weights & Biases that a cluster user can read: one run per job, grouped by sweep, and the report's summary run.

What a job's run holds (``logger=wandb``, the default; offline unless ``logger.wandb.offline=false``):

- **Group**: ``logger.wandb.group`` when set, else ``$VAENMF_WANDB_GROUP`` (``make reproduce`` sets one for its
  three sweeps), else the folder the job was launched into, relative to ``paths.output_root``: the sweep folder
  of a multirun (``table1/multiruns/2026-01-31_12-00-00``; every job of the sweep, local or a SLURM array task,
  shares it) or, for a single run outside a sweep, the run's own folder (a group of one, so that the report's
  summary run over that folder lands beside it). Never one group per task name for all time.
- **Job type** ``<task>.<method>`` (``speech.vae_nmf``), **name** ``<method> <noise or subjects> seed<seed>``,
  **tags** ``task:``, ``method:``, ``noise:`` (speech) or ``subjects:`` (synergy), ``seed:``, ``eval_split:``
  (when the config has one), ``experiment:<task_name>``, then the config's ``tags``. The run's config is the
  job's resolved config (as in ``metrics.json``) with these labels under ``job``; each Trainer stage's
  hyperparameters go under ``stages.<stage>`` (all per-movement stages under ``stages.movement``).
- **Training curves** under a few stable keys: ``<stage>/<metric>`` for the named stages (``speech_dict/...``,
  ``noise_dict_factory/...``, ``encoder/...``, against ``trainer/global_step``); a synergy job's per-movement
  Trainers (``synergy.batched=false``) under ``movement/<metric>`` against ``movement/step`` (a counter over the
  whole job, with ``movement/subject`` and ``movement/movement`` in every row) plus the table
  ``movement_curves`` (subject, movement, step, epoch, metrics); the batched VAE-NMF stack (the default) under
  ``stack/<metric>_mean`` (mean over the movements) against ``stack/epoch`` plus the table ``stack_history``
  (subject, movement, epoch, every metric of every model).
- **Results**: speech: ``<split>/<snr>/<metric>`` (split ``test`` unless the job has an ``eval_split``) and the
  tables ``snr_summary`` (one row per SNR) and ``utterances`` (one row per test mixture, as in
  ``metrics.json``'s ``rows``); synergy: ``vaf/<split>/<reconstruction>`` and the table ``movements`` (one row
  per subject and movement: VAF of every split and reconstruction, synergy recovery, fit statistics) and the
  image ``figure2/movement`` (the job's Figure 2 movement: each muscle, the EMG and the reconstructions).
- ``status`` in the summary; the exit code is 0 for a complete job, 1 otherwise.

Each job writes ``wandb_run.json`` (project, group, run id, mode, run folder) beside its ``metrics.json``; the
report uses it to detect jobs logged to W&B and to put its summary run (:func:`log_report_run`) in their group.
At the end of a job and of the report the ``wandb sync`` command of the offline run folders is printed.

Mode: ``WANDB_MODE=disabled`` in the environment turns W&B off (the tests); otherwise ``offline: true`` (the
default) runs offline, and then ``WANDB_ERROR_REPORTING`` defaults to false so that nothing leaves the machine.
Tables of the paper are never built from W&B: ``metrics.json`` is the source of truth.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers.logger import Logger
from pytorch_lightning.utilities import rank_zero_only

from vaenmf.atomic import write_json_atomic

log = logging.getLogger(__name__)

__all__ = [
    "GROUP_ENV",
    "SIDECAR",
    "StageLogger",
    "WandbJob",
    "ReportRun",
    "is_wandb_config",
    "wandb_mode",
    "eval_split",
    "job_labels",
    "job_type",
    "run_name",
    "run_tags",
    "run_group",
    "group_name",
    "sync_command",
    "log_speech_results",
    "log_synergy_results",
    "log_training_history",
    "log_report_run",
]

#: Environment variable naming the W&B group of every job that has no ``logger.wandb.group`` (make reproduce).
GROUP_ENV = "VAENMF_WANDB_GROUP"
#: The file a job writes beside metrics.json when it logged to W&B.
SIDECAR = "wandb_run.json"
#: W&B's limits on a group name and on a tag.
MAX_GROUP, MAX_TAG = 128, 64
#: A synergy job's per-movement Trainer stage (``synergy.batched=false``): ``s<subject>_m<movement>``.
MOVEMENT_STAGE = re.compile(r"^s(\d+)_m(\d+)$")


# ---------------------------------------------------------------------------------------------------------------
# Names, groups, tags


def is_wandb_config(node: Any) -> bool:
    """Whether a logger config node builds a W&B logger (``_target_`` a ``WandbLogger``)."""
    return node is not None and "_target_" in node and str(node["_target_"]).endswith("WandbLogger")


def wandb_mode(offline: bool) -> str | None:
    """The ``mode`` of ``wandb.init``: ``disabled`` when ``WANDB_MODE=disabled``, ``offline`` when ``offline`` (or
    ``WANDB_MODE=offline``), else None (W&B's own choice: online after ``wandb login``)."""
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env == "disabled":
        return "disabled"
    if offline or env in ("offline", "dryrun"):
        return "offline"
    return None


def eval_split(cfg: DictConfig) -> str | None:
    """The split a speech job is scored on, when its config names one (``eval_split`` or ``data.eval_split``)."""
    value = cfg.get("eval_split")
    if value is None and isinstance(cfg.get("data"), DictConfig):
        value = cfg.data.get("eval_split")
    return None if value is None else str(value)


def _ranges(values: Iterable[int]) -> str:
    """``[1, 2, 3, 5]`` as ``1-3,5``."""
    ordered = sorted(set(int(v) for v in values))
    parts: list[str] = []
    start = prev = None
    for v in [*ordered, None]:
        if v is not None and prev is not None and v == prev + 1:
            prev = v
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = v
    return ",".join(parts)


def _subjects(cfg: DictConfig) -> str:
    data = cfg.get("data")
    subjects = data.get("subjects") if isinstance(data, DictConfig) else None
    if subjects is None:
        return "all"
    if isinstance(subjects, int | str):
        return str(subjects)
    return _ranges(subjects)


def job_labels(cfg: DictConfig) -> dict[str, str]:
    """What names a job in W&B: task, method, noise (speech) or subject set (synergy), seed, eval_split (when the
    config has one) and the experiment (``task_name``)."""
    task = str(cfg.get("task"))
    method = cfg.get("method")
    labels = {"task": task, "method": str(method.get("name", "unknown")) if method is not None else "unknown"}
    if "noise" in cfg:
        labels["noise"] = str(cfg.noise)
        test_noise = cfg.get("test_noise")
        if test_noise is not None and str(test_noise) != str(cfg.noise):
            labels["test_noise"] = str(test_noise)
    if task == "synergy":
        labels["subjects"] = _subjects(cfg)
    labels["seed"] = str(cfg.get("seed"))
    split = eval_split(cfg)
    if split is not None:
        labels["eval_split"] = split
    labels["experiment"] = str(cfg.get("task_name", task))
    return labels


def job_type(labels: Mapping[str, str]) -> str:
    """``<task>.<method>``, e.g. ``speech.vae_nmf``."""
    return f"{labels['task']}.{labels['method']}"[:MAX_TAG]


def run_name(labels: Mapping[str, str]) -> str:
    """``<method> <noise> seed<seed>`` (speech) or ``<method> subjects <set> seed<seed>`` (synergy)."""
    where = labels.get("noise") or (f"subjects {labels['subjects']}" if "subjects" in labels else "")
    if labels.get("test_noise"):
        where += f" tested on {labels['test_noise']}"
    split = f" {labels['eval_split']}" if labels.get("eval_split", "test") != "test" else ""
    return " ".join(p for p in (labels["method"], where, f"seed{labels['seed']}") if p) + split


def run_tags(labels: Mapping[str, str], extra: Iterable[Any] = ()) -> list[str]:
    """One ``key:value`` tag per label, then the config's own tags; each within W&B's 64 characters."""
    tags = [f"{key}:{value}" for key, value in labels.items()]
    tags += [str(t) for t in extra]
    return list(dict.fromkeys(t[:MAX_TAG] for t in tags if t))


def group_name(folder: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """The group of the jobs launched into ``folder``: its path relative to ``root`` when inside it, else the
    absolute path; shortened (keeping its end, with a hash of the whole) to W&B's 128 characters."""
    path = Path(folder).resolve()
    name = path.as_posix()
    if root is not None and path.is_relative_to(Path(root).resolve()):
        name = path.relative_to(Path(root).resolve()).as_posix()
    if len(name) > MAX_GROUP:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{digest}~{name[-(MAX_GROUP - 9) :]}"
    return name or path.name


def launch_folder(output_dir: str | os.PathLike[str]) -> Path:
    """The folder a job was launched into: its multirun's sweep folder, else its own run folder."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN and hydra_cfg.sweep.dir:
            return Path(str(hydra_cfg.sweep.dir))
        return Path(str(hydra_cfg.runtime.output_dir))
    except Exception:  # no Hydra (a job run from Python): the job folder itself
        return Path(output_dir)


def run_group(cfg: DictConfig, output_dir: str | os.PathLike[str], explicit: str | None = None) -> str:
    """The W&B group of a job (see the module docstring): ``explicit``, ``$VAENMF_WANDB_GROUP``, or the folder it
    was launched into relative to ``paths.output_root``."""
    if explicit:
        return str(explicit)[:MAX_GROUP]
    if os.environ.get(GROUP_ENV):
        return os.environ[GROUP_ENV][:MAX_GROUP]
    root = _value(cfg.paths, "output_root") if "paths" in cfg else None
    return group_name(launch_folder(output_dir), root)


def sync_command(folders: Iterable[str | os.PathLike[str]]) -> str:
    """``wandb sync`` of the given offline run folders (quoted for a POSIX shell where needed)."""
    import shlex

    return " ".join(["wandb", "sync", *(shlex.quote(str(f)) for f in folders)])


# ---------------------------------------------------------------------------------------------------------------
# One job's run


def _value(node: DictConfig, key: str, default: Any = None) -> Any:
    """``node[key]`` resolved, or ``default`` when absent or unresolvable (``${hydra:...}`` without Hydra)."""
    try:
        value = node.get(key, default)
    except Exception:
        return default
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    return default if value is None else value


def _plain(params: Any) -> dict[str, Any]:
    """Hyperparameters as a JSON-able dict (what Lightning's WandbLogger does to them)."""
    from lightning_fabric.utilities.logger import (
        _convert_json_serializable,
        _convert_params,
        _sanitize_callable_params,
    )

    return _convert_json_serializable(_sanitize_callable_params(_convert_params(params)))


class WandbJob:
    """The W&B side of one job: its run (created on first use, on global rank 0 only), the stage loggers that
    share it, the stable keys and tables, and its end.

    Args:
        logger_cfg: The ``logger.<name>`` node (a ``WandbLogger``; ``group``, ``job_type``, ``name`` null are
            filled in from the job, ``offline`` becomes the run's mode).
        cfg: The job's config.
        output_dir: The job folder (default ``save_dir``; ``wandb_run.json`` goes there).
    """

    def __init__(self, logger_cfg: DictConfig, cfg: DictConfig, output_dir: str | os.PathLike[str]) -> None:
        from hydra.utils import get_class

        from vaenmf.tasks.runtime import config_record

        self.cfg = cfg
        self.output_dir = Path(output_dir)
        self.labels = job_labels(cfg)
        keys = set(logger_cfg.keys()) - {"_target_", "offline"}
        kwargs = {key: _value(logger_cfg, key) for key in keys}
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        self.mode = wandb_mode(bool(_value(logger_cfg, "offline", True)))
        if self.mode == "offline":
            os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
        kwargs["save_dir"] = str(kwargs.get("save_dir") or self.output_dir)
        kwargs["group"] = run_group(cfg, self.output_dir, kwargs.get("group"))
        kwargs["job_type"] = kwargs.get("job_type") or job_type(self.labels)
        kwargs["name"] = kwargs.get("name") or run_name(self.labels)
        kwargs["tags"] = run_tags(self.labels, kwargs.get("tags") or ())
        kwargs["config"] = {
            "job": dict(self.labels),
            **config_record(cfg),
            **dict(kwargs.get("config") or {}),
        }
        if self.mode is not None:
            kwargs["mode"] = self.mode
        self.settings = {key: kwargs[key] for key in ("project", "entity", "group", "job_type", "name", "tags")
                         if key in kwargs}  # fmt: skip
        # offline=False: the mode goes to wandb.init, instead of WandbLogger setting WANDB_MODE for the process.
        self.logger = get_class(str(logger_cfg._target_))(offline=False, **kwargs)
        init = getattr(self.logger, "_wandb_init", None)
        if isinstance(init, dict) and init.get("anonymous") is None:
            # Lightning always passes anonymous=None, which wandb (0.31 here) answers with a deprecation warning
            # in every job's log ("The anonymous setting has no effect"); an absent key means the same to wandb.
            init.pop("anonymous", None)
        self._started = False
        self._finished = False
        self._stage_params: dict[str, Any] = {}
        self._defined: set[str] = set()
        self._counters: dict[str, int] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {}

    # -- the run ----------------------------------------------------------------------------------------------

    @property
    def run(self) -> Any:
        """The job's ``wandb`` run on global rank 0 (created on first use), None elsewhere or once finished."""
        if rank_zero_only.rank != 0 or self._finished:
            return None
        if not self._started:
            import wandb

            if wandb.run is not None and self.logger._experiment is None:
                # A run left open by earlier code would silently absorb this job's logs.
                log.warning("finishing the W&B run %s left open before this job", wandb.run.id)
                wandb.finish()
            self._started = True
            experiment = self.logger.experiment
            self._write_sidecar(experiment)
            return experiment
        return self.logger.experiment

    @property
    def enabled(self) -> bool:
        """Whether this process logs anything (global rank 0, W&B not disabled, run not finished)."""
        return rank_zero_only.rank == 0 and self.mode != "disabled" and not self._finished

    def run_folder(self) -> Path | None:
        """The offline run folder (``<save_dir>/wandb/offline-run-*``), None for an online or disabled run."""
        experiment = self.logger._experiment
        if experiment is None or self.mode != "offline":
            return None
        folder = getattr(getattr(experiment, "settings", None), "sync_dir", None)
        return Path(folder) if folder else None

    def _write_sidecar(self, experiment: Any) -> None:
        if self.mode == "disabled":
            return
        folder = self.run_folder()
        record = {
            **self.settings,
            "id": getattr(experiment, "id", None),
            "mode": self.mode or "online",
            "run_dir": None if folder is None else str(folder),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        try:
            write_json_atomic(self.output_dir / SIDECAR, record)
        except OSError as err:
            log.warning("could not write %s: %s", self.output_dir / SIDECAR, err)

    def stage_logger(self, stage: str) -> StageLogger:
        """A Lightning logger for one Trainer stage that writes into this job's run."""
        return StageLogger(self, stage)

    # -- what stages log --------------------------------------------------------------------------------------

    def define(self, keys: Iterable[str], step_metric: str) -> None:
        """Give each of ``keys`` the x-axis ``step_metric`` (once per key)."""
        run = self.run
        if run is None:
            return
        if step_metric not in self._defined:
            run.define_metric(step_metric)
            self._defined.add(step_metric)
        for key in keys:
            if key not in self._defined:
                run.define_metric(key, step_metric=step_metric)
                self._defined.add(key)

    def next_step(self, counter: str) -> int:
        """The next value of a job-wide counter (the x-axis of keys logged by many short fits)."""
        self._counters[counter] = self._counters.get(counter, 0) + 1
        return self._counters[counter]

    def add_rows(self, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Rows for a table logged once, at the end of the job (:meth:`finish`)."""
        self._pending.setdefault(table, []).extend(dict(r) for r in rows)

    def log_stage_metrics(self, stage: str, metrics: Mapping[str, float], step: int | None) -> None:
        """What one stage's Trainer logs: ``<stage>/<metric>`` as is, a synergy movement's under ``movement/``."""
        if not self.enabled or self.run is None:
            return
        match = MOVEMENT_STAGE.match(stage)
        if match is None:
            self.logger.log_metrics(dict(metrics), step)
            return
        subject, movement = int(match.group(1)), int(match.group(2))
        prefix = f"{stage}/"
        values = {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in metrics.items()}
        record = {f"movement/{k}": v for k, v in values.items()}
        self.define(record, "movement/step")
        counter = self.next_step("movement")
        self.run.log(
            {**record, "movement/step": counter, "movement/subject": subject, "movement/movement": movement}
        )
        self.add_rows(
            "movement_curves",
            [{"subject": subject, "movement": movement, "step": step, "job_step": counter, **values}],
        )

    def log_stage_hyperparams(self, stage: str, params: Any) -> None:
        """A stage's hyperparameters, kept apart from the other stages' under ``stages.<stage>``."""
        if not self.enabled or self.run is None:
            return
        key = "movement" if MOVEMENT_STAGE.match(stage) else stage
        if key in self._stage_params:
            return
        self._stage_params[key] = _plain(params)
        self.run.config.update({"stages": dict(self._stage_params)}, allow_val_change=True)

    def log_table(
        self, key: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
    ) -> None:
        """Log ``rows`` (dicts) as the ``wandb.Table`` ``key``; columns: given, else every key in first-seen order."""
        if not self.enabled or self.run is None:
            return
        self.run.log({key: make_table(rows, columns)})

    def log_image(self, key: str, figure: Any, caption: str | None = None) -> None:
        """Log a matplotlib figure as the image ``key``."""
        if not self.enabled or self.run is None:
            return
        self.run.log({key: figure_image(figure, caption)})

    # -- the end -----------------------------------------------------------------------------------------------

    def finish(self, status: str = "ok") -> None:
        """Log the pending tables and the job's status, finish the run (exit code 0 when ``status`` is ok, else
        1) and print the ``wandb sync`` command of an offline run."""
        if not self._started or self._finished or rank_zero_only.rank != 0:
            return
        run = self.logger._experiment
        folder = self.run_folder()
        try:
            if run is not None and self.mode != "disabled":
                for table, rows in self._pending.items():
                    run.log({table: make_table(rows)})
                run.summary["status"] = status
        except Exception as err:  # a logging failure must not hide the job's own outcome
            log.warning("W&B: could not log the tables at the end of the job: %s", err)
        finally:
            self._pending.clear()
            self._finished = True
            if run is not None:
                run.finish(exit_code=0 if status == "ok" else 1)
            self.logger._experiment = None
        if folder is not None:
            log.info("W&B run saved offline in %s; upload it with: %s", folder, sync_command([folder]))


class StageLogger(Logger):
    """The Lightning logger of one Trainer stage: writes into the job's single W&B run (:class:`WandbJob`).

    Metrics keep their ``<stage>/`` keys, except a synergy movement's (``s<subject>_m<movement>/...``), which go
    under the stable ``movement/`` keys; hyperparameters go under ``stages.<stage>`` of the run's config.
    """

    def __init__(self, job: WandbJob, stage: str) -> None:
        super().__init__()
        self._job = job
        self._stage = stage

    @property
    def name(self) -> str | None:
        return self._job.logger.name

    @property
    def version(self) -> str | int | None:
        return self._job.logger.version

    @property
    def save_dir(self) -> str | None:
        return self._job.logger.save_dir

    @property
    def experiment(self) -> Any:
        return self._job.run if rank_zero_only.rank == 0 else self._job.logger.experiment

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._job.log_stage_metrics(self._stage, metrics, step)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self._job.log_stage_hyperparams(self._stage, params)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._job.logger.after_save_checkpoint(checkpoint_callback)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._job.run is not None:
            self._job.logger.finalize(status)


# ---------------------------------------------------------------------------------------------------------------
# Tables and figures


def _cell(value: Any) -> Any:
    """A value W&B tables take: numbers, strings, None; lists and dicts as JSON text."""
    import json

    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return json.dumps(value, default=str)


def _typed_table(columns: Sequence[str], data: Sequence[Sequence[Any]]) -> Any:
    """A ``wandb.Table`` whose every column has one type: a column mixing text and numbers (a table's
    ``Average`` row in an SNR column) is all text, as W&B refuses mixed columns."""
    import wandb

    rows = [list(row) for row in data]
    for j in range(len(columns)):
        kinds = {type(row[j]) for row in rows if row[j] is not None}
        if str in kinds and len(kinds) > 1 or (kinds & {int, float} and bool in kinds):
            for row in rows:
                if row[j] is not None:
                    row[j] = str(row[j])
    return wandb.Table(columns=list(columns), data=rows)


def make_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> Any:
    """A ``wandb.Table`` of dict rows (missing cells None)."""
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    return _typed_table(columns, [[_cell(row.get(c)) for c in columns] for row in rows])


def figure_image(figure: Any, caption: str | None = None) -> Any:
    """A ``wandb.Image`` of a matplotlib figure, rendered to PNG here (no pyplot state)."""
    import wandb
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    buffer.seek(0)
    return wandb.Image(Image.open(buffer), caption=caption)


def _job_wandb(job: Any) -> WandbJob | None:
    getter = getattr(job, "wandb", None)
    wandb_job = getter() if callable(getter) else None
    return wandb_job if wandb_job is not None and wandb_job.enabled else None


def log_speech_results(
    job: Any, summary: Mapping[str, Mapping[str, float]], rows: Sequence[Mapping[str, Any]]
) -> None:
    """A speech job's results: ``<split>/<snr>/<metric>`` to every experiment logger (CSV too), and in W&B the
    tables ``snr_summary`` and ``utterances``.

    Args:
        job: The job's :class:`~vaenmf.tasks.runtime.JobContext`.
        summary: SNR label -> metric -> mean (the ``summary`` of metrics.json).
        rows: One dict per test mixture (the ``rows`` of metrics.json).
    """
    split = eval_split(job.cfg) or "test"
    job.log_summary({f"{split}/{snr}/{k}": v for snr, entry in summary.items() for k, v in entry.items()})
    wandb_job = _job_wandb(job)
    if wandb_job is None:
        return
    try:
        wandb_job.log_table(
            "snr_summary", [{"split": split, "snr": float(snr), **entry} for snr, entry in summary.items()]
        )
        wandb_job.log_table("utterances", [{"split": split, **row} for row in rows])
    except Exception as err:
        log.warning("W&B: could not log the speech tables: %s", err)


def movement_row(result: Mapping[str, Any]) -> dict[str, Any]:
    """One synergy movement's result (a ``rows`` entry of metrics.json) as a flat table row."""
    row: dict[str, Any] = {k: result.get(k) for k in ("subject", "movement", "n_train", "n_test")}
    for key, entry in sorted((result.get("vaf") or {}).items()):
        row[f"vaf/{key}"] = entry.get("overall") if isinstance(entry, Mapping) else entry
    if "synergy_recovery" in result:
        row["synergy_recovery"] = result["synergy_recovery"]
    for key, value in sorted((result.get("dictionary") or {}).items()):
        row[f"dictionary/{key}"] = value
    return row


def movement_figure(path: str | os.PathLike[str], title: str, split: str = "train") -> Any:
    """Each muscle of one movement (``figure_emg.npz``): the EMG and every reconstruction, VAF in each title."""
    import numpy as np
    from matplotlib.figure import Figure

    from vaenmf.metrics import vaf

    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    X = arrays[f"{split}/original"]
    rate = float(arrays.get("sample_rate", np.array(100.0)))
    t = np.arange(X.shape[1]) / rate
    names = sorted(
        k.split("/", 1)[1] for k in arrays if k.startswith(f"{split}/") and k != f"{split}/original"
    )
    cols = 2
    n_rows = math.ceil(X.shape[0] / cols)
    fig = Figure(figsize=(11, 1.5 * n_rows + 0.8))
    axes = fig.subplots(n_rows, cols, sharex=True, squeeze=False)
    for ch in range(X.shape[0]):
        ax = axes[ch % n_rows][ch // n_rows]
        ax.plot(t, X[ch], color="0.35", lw=0.8, label="EMG")
        notes = []
        for name in names:
            X_hat = arrays[f"{split}/{name}"]
            ax.plot(t, X_hat[ch], lw=0.8, alpha=0.85, label=name)
            notes.append(f"{name} {100 * float(vaf(X[ch : ch + 1], X_hat[ch : ch + 1])):.1f}%")
        ax.set_title(f"muscle {ch + 1}: VAF " + ", ".join(notes), fontsize=8)
        ax.tick_params(labelsize=7)
    for ch in range(X.shape[0], n_rows * cols):
        axes[ch % n_rows][ch // n_rows].axis("off")
    axes[0][0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def log_synergy_results(
    job: Any, results: Sequence[Mapping[str, Any]], figure_path: str | os.PathLike[str] | None = None
) -> None:
    """A synergy job's results in W&B: the table ``movements`` and the image ``figure2/movement``.

    Args:
        job: The job's :class:`~vaenmf.tasks.runtime.JobContext`.
        results: One entry per (subject, movement) (the ``rows`` of metrics.json).
        figure_path: The job's ``figure_emg.npz`` (the Figure 2 movement), when it has one.
    """
    wandb_job = _job_wandb(job)
    if wandb_job is None:
        return
    try:
        wandb_job.log_table("movements", [movement_row(r) for r in results])
        if figure_path is not None and Path(figure_path).is_file():
            settings = job.cfg.synergy
            where = f"subject {settings.figure_subject}, movement {settings.figure_movement}"
            title = (
                f"{wandb_job.labels['method']} seed {wandb_job.labels['seed']}: {where}, training repetitions"
            )
            wandb_job.log_image("figure2/movement", movement_figure(figure_path, title), caption=title)
    except Exception as err:
        log.warning("W&B: could not log the synergy tables and figure: %s", err)


def log_training_history(
    job: Any,
    name: str,
    history: Any,
    metric_names: Sequence[str],
    labels: Sequence[tuple[int, int]],
) -> None:
    """Per-epoch history of many models fitted together (the batched VAE-NMF stack) under stable keys:
    ``<name>/<metric>_mean`` (mean over the models) against ``<name>/epoch``, and the table ``<name>_history``
    (subject, movement, epoch, every metric).

    Args:
        job: The job's :class:`~vaenmf.tasks.runtime.JobContext`.
        name: The key prefix, e.g. ``"stack"``.
        history: ``(models, epochs, metrics)`` array or tensor.
        metric_names: The metrics' names.
        labels: ``(subject, movement)`` of every model.
    """
    import numpy as np

    wandb_job = _job_wandb(job)
    if wandb_job is None:
        return
    try:
        H = np.asarray(history.detach().cpu() if hasattr(history, "detach") else history, dtype=np.float64)
        run = wandb_job.run
        step = f"{name}/epoch"
        keys = [f"{name}/{m}_mean" for m in metric_names]
        wandb_job.define(keys, step)
        for epoch in range(H.shape[1]):
            with np.errstate(all="ignore"):
                means = np.nanmean(H[:, epoch, :], axis=0) if H.shape[0] else np.full(len(keys), np.nan)
            run.log({step: epoch + 1, **{k: float(v) for k, v in zip(keys, means, strict=True)}})
        rows = [
            {
                "subject": s,
                "movement": m,
                "epoch": e + 1,
                **dict(zip(metric_names, map(float, H[k, e]), strict=True)),
            }
            for k, (s, m) in enumerate(labels)
            for e in range(H.shape[1])
        ]
        wandb_job.log_table(f"{name}_history", rows, ["subject", "movement", "epoch", *metric_names])
    except Exception as err:
        log.warning("W&B: could not log the %s history: %s", name, err)


# ---------------------------------------------------------------------------------------------------------------
# The report's summary run


def job_run_record(job_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What a job folder's ``wandb_run.json`` says (None when the job did not log to W&B or it is unreadable)."""
    import json

    path = Path(job_dir) / SIDECAR
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


@dataclass
class ReportRun:
    """The report's summary run.

    Attributes:
        group: Its group.
        mode: ``offline``, ``online`` or ``disabled``.
        folder: Its offline run folder (None unless offline).
        sync_folders: The offline run folders to upload: each job's latest run (named by its ``wandb_run.json``)
            and the summary run.
        tables, images: The keys logged.
        note: Why the group was chosen, for the printed message.
    """

    group: str
    mode: str
    folder: Path | None
    sync_folders: list[Path] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    note: str = ""


def _csv_cell(text: str) -> Any:
    if text == "":
        return None
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def csv_table(path: str | os.PathLike[str]) -> Any:
    """A report CSV as a ``wandb.Table`` (numbers as numbers where a whole column is numeric, empty cells None)."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        data = [[_csv_cell(cell) for cell in row] + [None] * (len(header) - len(row)) for row in reader]
    return _typed_table(header, [row[: len(header)] for row in data])


def _common(values: Iterable[Any]) -> Any:
    distinct = {v for v in values if v}
    return distinct.pop() if len(distinct) == 1 else None


def log_report_run(
    job_dirs: Sequence[str | os.PathLike[str]],
    written: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    force: bool | None = None,
    group: str | None = None,
    sweeps: Sequence[str] = (),
) -> ReportRun | None:
    """Log the report's tables (every CSV written, as ``tables/<name>``) and figures (every PNG, as
    ``figures/<name>``) into a summary run (job type ``report``) in the jobs' group.

    Args:
        job_dirs: The report's job folders.
        written: The files the report wrote.
        out_dir: The report folder (the run goes under ``out_dir/wandb/``).
        force: True: log even when no job logged to W&B; False: never; None: only when some job did (its
            folder has ``wandb_run.json``).
        group: The group; default: the jobs' group when they share one, else ``report-<time>``.
        sweeps: The sweep folders, for the run's config.

    Returns:
        What was logged, or None when nothing was.
    """
    import wandb

    records = [(Path(d), job_run_record(d)) for d in job_dirs]
    logged = [(d, r) for d, r in records if r is not None]
    if force is False or (force is None and not logged):
        return None
    groups = sorted({str(r.get("group")) for _, r in logged if r.get("group")})
    if group:
        note = "given with --wandb-group"
    elif len(groups) == 1:
        group, note = groups[0], "the jobs' group"
    else:
        group = f"report-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
        note = (
            f"the jobs are in {len(groups)} groups ({', '.join(groups)})"
            if groups
            else "no job logged to W&B"
        )
    modes = {str(r.get("mode")) for _, r in logged}
    experiments = sorted(
        {t for _, r in logged for t in r.get("tags") or () if str(t).startswith("experiment:")}
    )
    mode = wandb_mode(offline=not logged or "offline" in modes) or "online"
    if mode == "disabled":  # WANDB_MODE=disabled: nothing to log
        return None
    if mode == "offline":
        os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if wandb.run is not None:
        wandb.finish()
    run = wandb.init(
        project=_common(r.get("project") for _, r in logged) or "vaenmf",
        entity=_common(r.get("entity") for _, r in logged),
        group=group,
        job_type="report",
        name="report",
        tags=["report", *experiments],
        dir=str(out),
        mode=mode if mode != "online" else None,
        config={
            "sweeps": [str(s) for s in sweeps],
            "out": str(out.resolve()),
            "n_jobs": len(records),
            "n_jobs_logged": len(logged),
            "job_groups": groups,
        },
    )
    result = ReportRun(group=group, mode=mode, folder=None, note=note)
    try:
        for path in map(Path, written):
            if path.suffix == ".csv":
                key = f"tables/{path.stem}"
                run.log({key: csv_table(path)})
                result.tables.append(key)
            elif path.suffix == ".png":
                key = f"figures/{path.stem}"
                run.log({key: wandb.Image(str(path), caption=path.name)})
                result.images.append(key)
        run.summary["n_jobs"] = len(records)
    finally:
        folder = getattr(getattr(run, "settings", None), "sync_dir", None)
        run.finish()
    if mode == "offline" and folder:
        result.folder = Path(folder)
        # Each job's latest attempt (wandb_run.json names its run): one run per job in W&B, also when an
        # interrupted or requeued attempt left an earlier run folder beside it.
        jobs = [Path(r["run_dir"]) for _, r in logged if r.get("mode") == "offline" and r.get("run_dir")]
        result.sync_folders = [*(f for f in jobs if f.is_dir()), result.folder]
    return result
