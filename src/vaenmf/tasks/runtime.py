"""What every job needs around its science: provenance, atomic output, loggers and trainers per stage."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.plugins import TorchCheckpointIO

from vaenmf.atomic import save_torch_atomic
from vaenmf.callbacks import EpochProgressBar, EpochTimer, StageState
from vaenmf.errors import ConfigError
from vaenmf.systems.multiplicative import require_single_process

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_DIR.parents[1]

#: Config groups and keys (top level, or one level down as ``group.key``) that say where, how fast and how
#: results are recorded, not what is computed; the config hash ignores them, so a job rerun with another value
#: resumes its folder (``synergy.workers``: the same stacks whatever the process count).
NON_SCIENTIFIC_KEYS = (
    "paths",
    "hydra",
    "logger",
    "callbacks",
    "tags",
    "task_name",
    "cache_dictionaries",
    "cache_features",
    "torch_threads",
    "scoring_workers",
    "cache_input_scores",
    "synergy.workers",
)


def git_commit(root: Path = REPO_ROOT) -> str:
    """The repository's HEAD commit, suffixed ``-dirty`` when tracked files have changes; ``"unknown"`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def resolved_container(cfg: DictConfig, drop: Iterable[str] = ()) -> dict[str, Any]:
    """The config as plain Python objects with interpolations resolved, without the ``drop`` keys."""
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert isinstance(container, dict)
    for key in drop:
        container.pop(key, None)
    return container


def config_record(cfg: DictConfig) -> dict[str, Any]:
    """The config as recorded in metrics.json: resolved, without ``hydra``; unresolved if it cannot be resolved
    (the job then failed on that, and the record shows what was asked)."""
    try:
        return resolved_container(cfg, ("hydra",))
    except Exception:
        container = OmegaConf.to_container(cfg, resolve=False)
        assert isinstance(container, dict)
        container.pop("hydra", None)
        return container


def _canonical(value: Any) -> Any:
    """Integral floats as ints, so that ``beta=2`` and ``beta=2.0`` are one config."""
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: Keys added after jobs were recorded, whose null means what their absence meant: a config with one of them null is
#: the config without it (the same hash), so that the folders of earlier jobs stay theirs.
NULL_AS_ABSENT_KEYS = ("test_noise", "data.test_noise")


def _without_keys(config: dict[str, Any], keys: Iterable[str], only_null: bool = False) -> dict[str, Any]:
    """``config`` without ``keys`` (top level, or one level down as ``group.key``), or only those of them that are
    null; the caller's container is not changed."""
    out = dict(config)
    for dotted in keys:
        head, _, leaf = dotted.rpartition(".")
        node = out if not head else out.get(head)
        if not isinstance(node, dict) or leaf not in node or (only_null and node[leaf] is not None):
            continue
        if not head:
            del out[leaf]
        else:
            out[head] = {key: value for key, value in node.items() if key != leaf}
    return out


def scientific_part(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved config container without the keys that do not change a result (:data:`NON_SCIENTIFIC_KEYS`) and
    without the new keys that are null (:data:`NULL_AS_ABSENT_KEYS`), integral floats written as ints."""
    kept = _without_keys(config, (*NON_SCIENTIFIC_KEYS, "hydra"))
    return _canonical(_without_keys(kept, NULL_AS_ABSENT_KEYS, only_null=True))


def container_hash(config: dict[str, Any]) -> str:
    """The config hash of a resolved config container (a job's recorded ``config``, or a loaded config.yaml)."""
    payload = json.dumps(scientific_part(config), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def config_hash(cfg: DictConfig) -> str:
    """A short stable hash of everything in the config that can change a result."""
    return container_hash(resolved_container(cfg))


def fingerprint(*parts: Any) -> str:
    """A hash of everything that determines a result: tensors (values, shape, dtype), configs, plain values, and
    the package's numerical source code (so an artefact goes stale when the code changes).

    Args:
        *parts: Tensors, arrays, ``DictConfig`` nodes (resolved) or JSON-able values, in a fixed order.
    """
    import numpy as np

    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            part = part.detach().cpu().contiguous()
            digest.update(f"tensor{tuple(part.shape)}{part.dtype}".encode())
            digest.update(part.numpy().tobytes())
        elif isinstance(part, np.ndarray):
            digest.update(f"array{part.shape}{part.dtype}".encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            if OmegaConf.is_config(part):
                part = OmegaConf.to_container(part, resolve=True)
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"|")
    digest.update(source_hash().encode())
    return digest.hexdigest()[:24]


def source_hash(subpackages: Iterable[str] = ("nmf", "models", "systems")) -> str:
    """Hash of the package's numerical source code, so cached artefacts go stale when the code changes."""
    digest = hashlib.sha256()
    for sub in subpackages:
        for path in sorted((PACKAGE_DIR / sub).rglob("*.py")):
            digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _checkpoint_epochs(path: Path) -> int:
    """Epochs a Lightning checkpoint records as done (0 when it cannot be read)."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True).get("epoch", -1)) + 1
    except Exception:
        return 0


def seed_stage(seed: int, stage: str) -> int:
    """Seed every random generator for one stage from the job's seed and the stage's identity; return that seed.

    A stage's result then depends only on its own inputs: not on which earlier stages were fitted or taken from
    the dictionary cache (a cached fit draws no random numbers), nor on the order of a synergy job's movements.
    """
    digest = hashlib.sha256(f"{int(seed)}:{stage}".encode()).digest()
    derived = int.from_bytes(digest[:4], "little") % (2**31)
    pl.seed_everything(derived, workers=True, verbose=False)
    return derived


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O, written atomically: a job killed while saving leaves the previous
    ``last.ckpt``, never a truncated one (:mod:`vaenmf.atomic`)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        save_torch_atomic(path, checkpoint)


def training_length(node: DictConfig, where: str) -> int:
    """The length of a training stage: its ``mu_iterations`` (multiplicative updates) or its ``epochs``.

    Args:
        node: The stage's config node (``dictionary``, ``activations``, ``network``, ...).
        where: The node's key, for the message.

    Raises:
        ConfigError: If the node has neither, or the count is not an integer >= 1.
    """
    for key in ("mu_iterations", "epochs"):
        if key in node:
            value = node[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}.{key} must be an integer >= 1, got {value!r}")
            return value
    raise ConfigError(f"{where} must set its length: mu_iterations (multiplicative updates) or epochs")


# Lightning warnings that are expected for the full-batch NMF systems (no optimiser, one batch per epoch).
for _message in (
    r".*configure_optimizers.* returned `None`.*",
    r".*number of training batches .* is smaller than the logging interval.*",
    r".*does not have many workers.*",
    r".*LeafSpec.* is deprecated.*",
):
    warnings.filterwarnings("ignore", message=_message)


class LightningChatter(logging.Filter):
    """Drops what Lightning logs at every ``Trainer`` and every ``fit`` that says nothing about this job.

    A job builds one Trainer per stage (two dictionaries, the encoder, the DRNN, DNMF's bases), and a synergy job
    one per movement without the batched path; Lightning logs at each:

    * the device lines ("GPU available: False, used: False", "TPU available: ...", "HPU available: ...",
      "LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: ..."): kept the first time in a process, dropped afterwards;
    * a tip to install litlogger, and "`Trainer.fit` stopped: `max_epochs=...` reached." (the stage ends where its
      config says), and "`Trainer(limit_val_batches=1.0)` was configured so 100% of the batches will be used":
      always dropped.

    Anything else (warnings, errors, "stopped" for another reason) passes.
    """

    ONCE = ("GPU available:", "TPU available:", "HPU available:", "LOCAL_RANK:")
    NEVER = ("💡 Tip:", "`Trainer.fit` stopped: `max_epochs=", "was configured so 100% of the batches")

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(text in message for text in self.NEVER):
            return False
        for prefix in self.ONCE:
            if message.startswith(prefix):
                if message in self.seen:
                    return False
                self.seen.add(message)
        return True


LIGHTNING_CHATTER = LightningChatter()
#: Where Lightning's rank-zero messages (device lines, tips, "fit stopped") are logged.
LIGHTNING_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)


def quiet_lightning() -> None:
    """Install :class:`LightningChatter` on Lightning's loggers (once per process; idempotent)."""
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if LIGHTNING_CHATTER not in logger.filters:
            logger.addFilter(LIGHTNING_CHATTER)


quiet_lightning()


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run the body with one torch intra-op thread and one BLAS thread, then restore both.

    For loops of small per-utterance work (257-bin spectrograms, 1024 x 1024 BSS Eval systems): one thread is
    as fast on an idle machine, and on a machine shared with other jobs an oversubscribed thread pool made the
    same work 10-50x slower (measured: 68 ms instead of ~2 ms per activation update, LU 0.22 s instead of 0.02 s).
    """
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(previous)


class JobContext:
    """Per-job state shared by the stages of one task: output directory, loggers, trainer construction.

    One W&B run per job is shared by every stage (:class:`vaenmf.tracking.WandbJob`: grouped by sweep, named and
    tagged by the job, metrics under ``<stage>/`` keys, a synergy movement's under ``movement/``); CSV loggers
    get one folder per stage so that each ``trainer.fit`` writes its own ``metrics.csv``.
    """

    def __init__(self, cfg: DictConfig, output_dir: Path) -> None:
        self.cfg = cfg
        self.output_dir = Path(output_dir)
        self._shared_loggers: dict[str, Any] = {}
        self._wandb: dict[str, Any] = {}
        #: Per trained stage: the epochs this job ran of it and their wall seconds (metrics.json ``epochs``).
        self.epoch_timings: dict[str, dict[str, float]] = {}

    def _logger_configs(self) -> Iterator[tuple[str, DictConfig]]:
        for name, logger_cfg in (self.cfg.get("logger") or {}).items():
            if logger_cfg is not None and "_target_" in logger_cfg:
                yield str(name), logger_cfg

    def wandb(self) -> Any:
        """The job's :class:`vaenmf.tracking.WandbJob` (its W&B run, created on first use), or None when no W&B
        logger is configured."""
        from vaenmf.tracking import is_wandb_config

        for name, logger_cfg in self._logger_configs():
            if is_wandb_config(logger_cfg):
                return self._wandb_job(name, logger_cfg)
        return None

    def _wandb_job(self, name: str, logger_cfg: DictConfig) -> Any:
        from vaenmf.tracking import WandbJob

        if name not in self._wandb:
            self._wandb[name] = WandbJob(logger_cfg, self.cfg, self.output_dir)
        return self._wandb[name]

    def loggers(self, stage: str) -> list[Any]:
        """The experiment loggers of one stage: a CSV logger of its own, the job's shared W&B run, others shared."""
        from vaenmf.tracking import is_wandb_config

        loggers = []
        for name, logger_cfg in self._logger_configs():
            target = str(logger_cfg._target_)
            if target.endswith("CSVLogger"):
                loggers.append(instantiate(logger_cfg, version=stage))
            elif is_wandb_config(logger_cfg):
                loggers.append(self._wandb_job(name, logger_cfg).stage_logger(stage))
            else:
                if name not in self._shared_loggers:
                    if target.endswith("WandbLogger"):
                        # W&B prints every run's history and summary (40 lines a job) unless quiet; the numbers
                        # are in metrics.json and the run folder. WANDB_QUIET=false brings them back.
                        os.environ.setdefault("WANDB_QUIET", "true")
                    self._shared_loggers[name] = instantiate(logger_cfg)
                loggers.append(self._shared_loggers[name])
        return loggers

    def callbacks(self, stage: str, checkpoint_every: int | None = None) -> list[pl.Callback]:
        """The configured callbacks of one stage; checkpoints go to ``checkpoints/<stage>/`` every
        ``checkpoint_every`` epochs (multiplicative-update iterations count as epochs)."""
        callbacks = []
        for cb_cfg in (self.cfg.get("callbacks") or {}).values():
            if cb_cfg is None or "_target_" not in cb_cfg:
                continue
            kwargs: dict[str, Any] = {}
            if "dirpath" in cb_cfg and cb_cfg.dirpath is None:
                kwargs["dirpath"] = str(self.checkpoint_dir(stage))
            if "every_n_epochs" in cb_cfg and cb_cfg.every_n_epochs is None:
                kwargs["every_n_epochs"] = max(1, int(checkpoint_every or 1))
            callbacks.append(instantiate(cb_cfg, **kwargs))
        return callbacks

    def checkpoint_dir(self, stage: str) -> Path:
        return self.output_dir / "checkpoints" / stage

    def resume_checkpoint(self, stage: str, stage_fingerprint: str) -> str | None:
        """``last.ckpt`` of this stage when a previous attempt of this job left one for the same inputs.

        A checkpoint written for other inputs (another fingerprint: the data, settings, seed or code changed), or
        one that cannot be read, is never resumed: the stage's checkpoint folder is set aside as
        ``checkpoints/<stage>.stale-<n>`` (kept, not deleted) and the stage starts afresh.
        """
        folder = self.checkpoint_dir(stage)
        last = folder / "last.ckpt"
        if not last.is_file():
            return None
        try:
            checkpoint = torch.load(last, map_location="cpu", weights_only=True)
            found = (checkpoint.get("vaenmf") or {}).get("fingerprint")
            epoch = int(checkpoint.get("epoch", -1)) + 1
        except Exception as err:  # truncated, or not a checkpoint of this package
            reason = f"it cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        else:
            if found == stage_fingerprint:
                log.info("Resuming stage %s from %s (%d epochs done)", stage, last, epoch)
                return str(last)
            reason = f"it was written for other inputs (fingerprint {found} instead of {stage_fingerprint})"
        stale = self._set_aside(folder)
        log.warning("Not resuming stage %s from %s: %s; starting the stage afresh (old checkpoints: %s)",
                    stage, last, reason, stale)  # fmt: skip
        return None

    @staticmethod
    def _set_aside(folder: Path) -> Path:
        for n in range(1, 10_000):
            target = folder.with_name(f"{folder.name}.stale-{n}")
            if not target.exists():
                folder.rename(target)
                return target
        raise ConfigError(f"too many stale checkpoint folders beside {folder}; remove them")

    def fit_stage(
        self,
        stage: str,
        system: pl.LightningModule,
        stage_fingerprint: str,
        max_epochs: int,
        checkpoint_every: int | None = None,
        extra_callbacks: Iterable[pl.Callback] = (),
        single_device: bool = False,
        minibatch: bool = True,
        fit_kwargs: dict[str, Any] | None = None,
        **trainer_overrides: Any,
    ) -> pl.Trainer:
        """Train one stage under its own Trainer, resuming the ``last.ckpt`` an earlier attempt left for the same
        inputs (``stage_fingerprint``), with checkpoints that record that fingerprint and the random states.

        Args:
            stage: Names the stage's logs and checkpoint folder.
            system: The LightningModule to train.
            stage_fingerprint: :func:`fingerprint` of everything that determines the stage's result.
            max_epochs, checkpoint_every, extra_callbacks, single_device: As :meth:`trainer`.
            minibatch: Mini-batch training of a small network (one CPU thread, see :meth:`cpu_threads_for`).
            fit_kwargs: ``datamodule=`` or ``train_dataloaders=`` for ``Trainer.fit``.
            **trainer_overrides: Further Trainer arguments.

        Returns:
            The Trainer after fitting.
        """
        timer = EpochTimer()
        callbacks = [StageState(stage_fingerprint), timer, *extra_callbacks]
        trainer = self.trainer(
            stage, max_epochs, checkpoint_every, callbacks, single_device, **trainer_overrides
        )
        with self.cpu_threads_for(minibatch=minibatch):
            trainer.fit(
                system, ckpt_path=self.resume_checkpoint(stage, stage_fingerprint), **(fit_kwargs or {})
            )
            # The periodic checkpoint may lag the last epoch (12 epochs, one every 5): save the finished stage, so
            # that a later kill of this job never makes it redo this stage's last epochs.
            last = self.checkpoint_dir(stage) / "last.ckpt"
            saves = any(isinstance(cb, ModelCheckpoint) for cb in trainer.callbacks)
            if saves and trainer.current_epoch > (_checkpoint_epochs(last) if last.is_file() else 0):
                trainer.save_checkpoint(last)
        entry = self.epoch_timings.setdefault(stage, {"epochs": 0, "seconds": 0.0, "batches_per_epoch": 0})
        entry["epochs"] += len(timer.seconds)
        entry["seconds"] += sum(timer.seconds)
        entry["batches_per_epoch"] = max(entry["batches_per_epoch"], timer.batches)
        return trainer

    def stage_epochs(self, epochs: int) -> int:
        """A stage's length after the job-wide cap ``max_stage_epochs`` (e.g. ``experiment=smoke``)."""
        cap = self.cfg.get("max_stage_epochs")
        return int(epochs) if cap is None else min(int(epochs), int(cap))

    def trainer(
        self,
        stage: str,
        max_epochs: int,
        checkpoint_every: int | None = None,
        extra_callbacks: Iterable[pl.Callback] = (),
        single_device: bool = False,
        **overrides: Any,
    ) -> pl.Trainer:
        """A Trainer for one stage: the configured trainer, this stage's loggers, callbacks and checkpoints.

        Args:
            stage: Names the stage's logs and checkpoint folder.
            max_epochs: The stage's length (capped by ``max_stage_epochs``).
            checkpoint_every: Checkpoint period in epochs (at most the stage's length, so that a finished
                stage always leaves its ``last.ckpt``).
            single_device: The stage has no gradient-trained parameters (multiplicative updates): refuse a
                multi-process trainer with a clear message instead of Lightning's DDP error.
        """
        max_epochs = self.stage_epochs(max_epochs)
        period = max(1, min(int(checkpoint_every or max_epochs or 1), max(1, max_epochs)))
        plugins = [*(instantiate(p) for p in self.cfg.trainer.get("plugins") or ()), AtomicCheckpointIO()]
        trainer_cfg = {key: value for key, value in self.cfg.trainer.items() if key != "plugins"}
        callbacks = [*self.callbacks(stage, period), *extra_callbacks]
        # One bar per stage, advanced per epoch, instead of Lightning's bar per epoch redrawn at every batch.
        if trainer_cfg.get("enable_progress_bar", True) and not any(
            isinstance(cb, ProgressBar) for cb in callbacks
        ):
            callbacks.append(EpochProgressBar(stage))
        quiet_lightning()
        trainer = instantiate(
            OmegaConf.create(trainer_cfg),
            max_epochs=max_epochs,
            logger=self.loggers(stage) or False,
            callbacks=callbacks,
            default_root_dir=str(self.output_dir),
            plugins=plugins,
            **overrides,
        )
        if single_device:
            require_single_process(trainer.world_size, f"stage {stage}")
        return trainer

    def cpu_threads_for(self, minibatch: bool) -> contextlib.AbstractContextManager:
        """The thread setting of a training stage.

        Mini-batch training of the small networks (VAE-NMF encoder, encoding DNN: batch 128, 400 units) runs on one
        CPU thread unless ``torch_threads`` is set: their matrices are too small to gain from a thread pool, and
        on a shared 2-core machine the pool made a VAE-NMF epoch 4x slower (2.7 s instead of 0.66 s, measured).
        Full-batch NMF keeps every thread for its large products.
        """
        if minibatch and not self.cfg.get("torch_threads"):
            return single_threaded()
        return contextlib.nullcontext()

    def log_summary(self, metrics: dict[str, float]) -> None:
        """Send final scalar metrics to every experiment logger."""
        for logger in self.loggers("summary"):
            logger.log_metrics(metrics)
            logger.save()

    def finish(self, status: str = "ok") -> None:
        """End the job's loggers: finish its W&B run (exit code 0 when ``status`` is ``ok``; the ``wandb sync``
        command of an offline run is logged) and finalise the others."""
        for logger in self._shared_loggers.values():
            logger.finalize("success" if status == "ok" else "failed")
        self._shared_loggers.clear()
        for wandb_job in self._wandb.values():
            wandb_job.finish(status)
        self._wandb.clear()
