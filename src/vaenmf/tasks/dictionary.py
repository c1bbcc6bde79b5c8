"""Fitting one dictionary under the Trainer, with a content-addressed cache shared by the jobs of a sweep."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from vaenmf.atomic import save_torch_atomic
from vaenmf.callbacks import EpochProgressBar
from vaenmf.data.matrix import MatrixDataModule
from vaenmf.tasks.runtime import JobContext, source_hash, training_length
from vaenmf.validation import as_nonnegative_tensor, check_rank

log = logging.getLogger(__name__)


#: Keys of the ``dictionary`` node that do not change the fitted dictionary.
NON_FIT_KEYS = ("checkpoint_every",)


def dictionary_key(X: torch.Tensor, dictionary_cfg: DictConfig, seed: int) -> str:
    """Hash of everything that determines a fitted dictionary: the data, the fit settings, the seed, the code.

    The settings are the whole ``dictionary`` node but its checkpoint period, so DNMF's analysis bases share
    the entry of the identical NMF fit (``method=dnmf`` composes the same ``dictionary=nmf``).
    """
    digest = hashlib.sha256()
    digest.update(X.detach().cpu().contiguous().numpy().tobytes())
    digest.update(str(tuple(X.shape)).encode())
    settings = OmegaConf.to_container(dictionary_cfg, resolve=True)
    assert isinstance(settings, dict)
    fit = {key: value for key, value in settings.items() if key not in NON_FIT_KEYS}
    digest.update(json.dumps(fit, sort_keys=True, default=str).encode())
    digest.update(f"seed={seed}".encode())
    digest.update(source_hash().encode())
    return digest.hexdigest()[:24]


class DictionaryCache:
    """Fitted dictionaries on disk, one ``<key>.pt`` file each.

    Writes go to a temporary file that is renamed into place, so concurrent jobs that fit the same dictionary
    never see a partial file; the last writer wins with identical content.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def load(self, key: str) -> torch.Tensor | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a corrupt entry is refitted, not fatal
            log.warning("Ignoring unreadable cached dictionary %s (%s)", path, err)
            return None

    def save(self, key: str, W: torch.Tensor) -> None:
        save_torch_atomic(self.path(key), W.detach().cpu().clone())


def fit_dictionary_stage(
    job: JobContext,
    stage: str,
    X: torch.Tensor,
    dictionary_cfg: DictConfig,
    seed: int,
    cache: DictionaryCache | None,
) -> torch.Tensor:
    """Fit the dictionary of ``X`` with the configured system under a Trainer, or take it from the cache.

    Args:
        job: The job's context (loggers, callbacks, trainer settings).
        stage: Name of this stage, e.g. ``"speech_dict"``; prefixes logged metrics and names the checkpoint folder.
        X: Nonnegative training frames.
        dictionary_cfg: The ``dictionary`` config group (``rank``, ``mu_iterations`` or ``epochs``,
            ``batch_size`` for mini-batch learners, the ``system`` node).
        seed: Seed of the fit.
        cache: Where fitted dictionaries are kept, or None to always fit.

    Shape:
        X: ``(m, n)``; returns ``(m, r)`` on the CPU.
    """
    X = as_nonnegative_tensor(X, f"{stage} training frames", dtype=torch.float32)
    check_rank(dictionary_cfg.rank, tuple(X.shape), name=f"{stage} training frames")
    key = dictionary_key(X, dictionary_cfg, seed) if cache is not None else None
    if cache is not None and key is not None:
        W = cache.load(key)
        if W is not None:
            log.info("%s: reusing cached dictionary %s", stage, cache.path(key))
            return W
    system = train_dictionary_system(job, stage, X, dictionary_cfg, seed)
    W = system.dictionary()
    if cache is not None and key is not None and rank_zero_only.rank == 0:
        cache.save(key, W)
    return W


def train_dictionary_system(
    job: JobContext, stage: str, X: torch.Tensor, dictionary_cfg: DictConfig, seed: int
) -> pl.LightningModule:
    """Instantiate the configured dictionary system and fit it to ``X`` under this stage's Trainer.

    Returns the trained system (its ``dictionary()`` and, for VAE-NMF, its encoder); callers that only need
    the dictionary use :func:`fit_dictionary_stage`, which also caches it.

    Shape:
        X: ``(m, n)`` nonnegative, already validated.
    """
    system = instantiate(
        dictionary_cfg.system,
        n_features=X.shape[0],
        n_frames=X.shape[1],
        rank=int(dictionary_cfg.rank),
        seed=int(seed),
        log_prefix=f"{stage}/",
        # Plain lists and dicts in the hyperparameters: a checkpoint must load under weights_only=True.
        _convert_="all",
    )
    batch_size = dictionary_cfg.get("batch_size")
    datamodule = MatrixDataModule(X, batch_size=batch_size, seed=seed)
    full_batch = batch_size is None
    # Full-batch fits have one step per epoch: one bar over epochs instead of one bar per epoch.
    extra = (
        [EpochProgressBar(stage)] if full_batch and job.cfg.trainer.get("enable_progress_bar", True) else []
    )
    trainable = any(p.requires_grad for p in system.parameters())
    trainer = job.trainer(
        stage,
        max_epochs=training_length(dictionary_cfg, "dictionary"),
        checkpoint_every=dictionary_cfg.get("checkpoint_every"),
        extra_callbacks=extra,
        single_device=not trainable,
    )
    log.info(
        "%s: fitting a rank-%d %s dictionary on %d frames",
        stage,
        dictionary_cfg.rank,
        dictionary_cfg.name,
        X.shape[1],
    )
    with job.cpu_threads_for(minibatch=not full_batch):
        trainer.fit(system, datamodule=datamodule, ckpt_path=job.resume_checkpoint(stage))
    return system
