"""Fitting one dictionary under the Trainer, with a content-addressed cache shared by the jobs of a sweep."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from vaenmf.atomic import save_torch_atomic
from vaenmf.callbacks import EpochProgressBar, FiniteLossGuard
from vaenmf.data.matrix import MatrixDataModule
from vaenmf.tasks.runtime import JobContext, fingerprint, seed_stage, training_length
from vaenmf.validation import as_nonnegative_tensor, check_rank, check_scale

log = logging.getLogger(__name__)


#: Keys of the ``dictionary`` node that do not change the fitted dictionary.
NON_FIT_KEYS = ("checkpoint_every",)


def dictionary_key(X: torch.Tensor, dictionary_cfg: DictConfig, seed: int) -> str:
    """Fingerprint of everything that determines a fitted dictionary: the data, the fit settings, the seed, the
    code. It names the cache entry and is recorded in the stage's checkpoints.

    The settings are the whole ``dictionary`` node but its checkpoint period, so DNMF's analysis bases share
    the entry of the identical NMF fit (``method=dnmf`` composes the same ``dictionary=nmf``).
    """
    settings = OmegaConf.to_container(dictionary_cfg, resolve=True)
    assert isinstance(settings, dict)
    fit = {key: value for key, value in settings.items() if key not in NON_FIT_KEYS}
    return fingerprint("dictionary", X, fit, int(seed))


class DictionaryCache:
    """Fitted dictionaries on disk, one ``<key>.pt`` file each: ``{"key", "W", "stats"}``.

    Writes go to a temporary file that is renamed into place, so concurrent jobs that fit the same dictionary
    never see a partial file; the last writer wins with identical content. An entry is used only if it records
    the key it is filed under (an entry of an earlier layout, or a renamed file, is refitted).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def load(self, key: str) -> tuple[torch.Tensor, dict[str, float]] | None:
        """The dictionary filed under ``key`` and the statistics of its fit, or None."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a corrupt entry is refitted, not fatal
            log.warning("Ignoring unreadable cached dictionary %s (%s)", path, err)
            return None
        if (
            not isinstance(entry, dict)
            or entry.get("key") != key
            or not isinstance(entry.get("W"), torch.Tensor)
        ):
            log.warning("Ignoring cached dictionary %s: it does not record the key it is filed under", path)
            return None
        return entry["W"], dict(entry.get("stats") or {})

    def save(self, key: str, W: torch.Tensor, stats: dict[str, float] | None = None) -> None:
        save_torch_atomic(
            self.path(key), {"key": key, "W": W.detach().cpu().clone(), "stats": dict(stats or {})}
        )


def fit_dictionary_stage(
    job: JobContext,
    stage: str,
    X: torch.Tensor,
    dictionary_cfg: DictConfig,
    seed: int,
    cache: DictionaryCache | None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Fit the dictionary of ``X`` with the configured system under a Trainer, or take it from the cache.

    Args:
        job: The job's context (loggers, callbacks, trainer settings).
        stage: Name of this stage, e.g. ``"speech_dict"``; prefixes logged metrics and names the checkpoint folder.
        X: Nonnegative training frames.
        dictionary_cfg: The ``dictionary`` config group (``rank``, ``mu_iterations`` or ``epochs``,
            ``batch_size`` for mini-batch learners, the ``system`` node).
        seed: Seed of the fit.
        cache: Where fitted dictionaries are kept, or None to always fit.

    Returns:
        The dictionary (on the CPU) and the statistics of its fit (e.g. the negative-weight fraction and mass of a
        VAE-NMF decoder, :func:`fit_statistics`), from the cache when the fit is reused.

    Shape:
        X: ``(m, n)``; returns ``(m, r)``.
    """
    X = as_nonnegative_tensor(X, f"{stage} training frames", dtype=torch.float32)
    check_rank(dictionary_cfg.rank, tuple(X.shape), name=f"{stage} training frames")
    key = dictionary_key(X, dictionary_cfg, seed)
    if cache is not None:
        entry = cache.load(key)
        if entry is not None:
            log.info("%s: reusing cached dictionary %s", stage, cache.path(key))
            return entry
    system = train_dictionary_system(job, stage, X, dictionary_cfg, seed, key)
    W, stats = system.dictionary(), fit_statistics(system)
    # The fit resumed only from checkpoints of this very key (JobContext.resume_checkpoint), so W belongs to it.
    if cache is not None and rank_zero_only.rank == 0:
        cache.save(key, W, stats)
    return W, stats


def fit_statistics(fitted: Any) -> dict[str, float]:
    """What a fitted dictionary learner reports about its dictionary: a system's ``dictionary_stats()``, else a
    VAE-NMF model's fraction and mass of the negative decoder weights that ``max(W, 0)`` clips (``neg_fraction``,
    ``neg_mass``); nothing for NMF.

    Args:
        fitted: A trained system, or a trained :class:`~vaenmf.models.vae_nmf.VAENMF`.
    """
    stats = getattr(fitted, "dictionary_stats", None)
    if callable(stats):
        return {str(k): float(v) for k, v in stats().items()}
    negative = getattr(getattr(fitted, "model", fitted), "negative_weight_stats", None)
    if callable(negative):
        fraction, mass = negative()
        return {"neg_fraction": float(fraction), "neg_mass": float(mass)}
    return {}


def train_dictionary_system(
    job: JobContext,
    stage: str,
    X: torch.Tensor,
    dictionary_cfg: DictConfig,
    seed: int,
    key: str | None = None,
) -> pl.LightningModule:
    """Instantiate the configured dictionary system and fit it to ``X`` under this stage's Trainer.

    Returns the trained system (its ``dictionary()`` and, for VAE-NMF, its encoder); callers that only need
    the dictionary use :func:`fit_dictionary_stage`, which also caches it. A killed fit resumes from its
    ``last.ckpt`` when the data, settings, seed and code are those of the checkpoint (``key``).

    Args:
        key: The fit's :func:`dictionary_key` (computed when not given).

    Shape:
        X: ``(m, n)`` nonnegative, already validated.
    """
    check_scale(X, f"{stage} training frames")
    key = key or dictionary_key(X, dictionary_cfg, seed)
    # Seeded by the fit's own inputs only (not the stage's name), so that the key determines the dictionary; the
    # initialisation, the dictionary reset and the batch order all follow this one seed, as in the batched fits
    # of the synergy task (vaenmf.models.vae_nmf_stack), which then give the same dictionaries.
    fit_seed = seed_stage(seed, "dictionary")
    system = instantiate(
        dictionary_cfg.system,
        n_features=X.shape[0],
        n_frames=X.shape[1],
        rank=int(dictionary_cfg.rank),
        seed=fit_seed,
        log_prefix=f"{stage}/",
        # Plain lists and dicts in the hyperparameters: a checkpoint must load under weights_only=True.
        _convert_="all",
    )
    batch_size = dictionary_cfg.get("batch_size")
    full_batch = batch_size is None
    extra: list[pl.Callback] = []
    # Full-batch fits have one step per epoch: one bar over epochs instead of one bar per epoch.
    if full_batch and job.cfg.trainer.get("enable_progress_bar", True):
        extra.append(EpochProgressBar(stage))
    trainable = any(p.requires_grad for p in system.parameters())
    if trainable:
        extra.append(
            FiniteLossGuard(
                stage, f"the training frames range over [{float(X.min()):.3g}, {float(X.max()):.3g}]"
            )
        )
    log.info(
        "%s: fitting a rank-%d %s dictionary on %d frames",
        stage,
        dictionary_cfg.rank,
        dictionary_cfg.name,
        X.shape[1],
    )
    job.fit_stage(
        stage,
        system,
        key,
        max_epochs=training_length(dictionary_cfg, "dictionary"),
        checkpoint_every=dictionary_cfg.get("checkpoint_every"),
        extra_callbacks=extra,
        single_device=not trainable,
        minibatch=not full_batch,
        fit_kwargs={"datamodule": MatrixDataModule(X, batch_size=batch_size, seed=fit_seed)},
    )
    return system
