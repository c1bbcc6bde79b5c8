"""The speech-enhancement task (the paper's Tables 1 and 2): one Hydra job = one method x noise x seed.

Fit the speech dictionary ``W^s`` and the noise dictionary ``W^n``, build the activation estimator, enhance
every mixture of the evaluated split, resynthesise with the noisy phase, score it, and write ``metrics.json``.

``eval_split`` (conf/task/speech.yaml) says which split is scored: ``validation`` (the split every choice of
a default is made on) or ``test`` (the default: the split the tables report). Training is the same for both;
the job records which it scored in ``metrics.json`` (``eval_split``), and its W&B keys start with it.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only

from vaenmf.callbacks import progress_bar
from vaenmf.data.features import magnitude_phase, resynthesise
from vaenmf.data.noises import noise_stage_name, parse_noise
from vaenmf.data.records import training_data
from vaenmf.data.shortfalls import shortfall_text
from vaenmf.data.speech import EVAL_SPLITS
from vaenmf.errors import ConfigError
from vaenmf.metrics.pool import InputScoreCache, ScoringPool, scoring_workers
from vaenmf.tasks.dictionary import DictionaryCache, fit_dictionary_stage
from vaenmf.tasks.runtime import JobContext, single_threaded
from vaenmf.tasks.separators import MaskBases, Separator, build_dnn_separator, build_mu_separator
from vaenmf.tasks.stages import StageClock, children_peak_rss_mb
from vaenmf.tracking import log_speech_results

log = logging.getLogger(__name__)

#: Metrics averaged per SNR into metrics.json's ``summary``. Not the input's SAR: the unprocessed mixture has no
#: artefacts, its SAR is numerically infinite (~150 dB) and means nothing averaged (the rows keep it).
SUMMARY_METRICS = (
    "sdr",
    "sir",
    "sar",
    "pesq_nb",
    "pesq_wb",
    "stoi",
    "sdr_input",
    "sir_input",
    "pesq_nb_input",
    "pesq_wb_input",
    "stoi_input",
)


def build_activation_estimator(
    cfg: DictConfig,
    job: JobContext,
    W_speech: torch.Tensor,
    W_noise: torch.Tensor,
    datamodule: Any,
    mask_bases: MaskBases | None = None,
) -> Separator:
    """The activation estimator named by ``activations.name``, masking with ``mask_bases`` when given (DNMF)."""
    name = cfg.activations.name
    if name == "mu":
        return build_mu_separator(cfg.activations, W_speech, W_noise, mask_bases)
    if name == "dnn":
        return build_dnn_separator(
            cfg.activations, job, W_speech, W_noise, datamodule, int(cfg.seed), mask_bases
        )
    raise ConfigError(f"activations.name must be 'mu' or 'dnn', got {name!r}")


def build_speech_separator(
    cfg: DictConfig,
    job: JobContext,
    datamodule: Any,
    clock: StageClock | None = None,
    dictionaries: dict[str, dict[str, float]] | None = None,
) -> Separator:
    """Everything the method trains before enhancement: dictionaries, reconstruction bases, networks.

    What is built follows the method's components (``conf/method/``): a ``network`` (the DRNN) is the whole
    separator; otherwise the ``dictionary`` learner fits the speech and the noise dictionary, the optional
    ``reconstruction`` node trains DNMF's reconstruction bases, and the ``activations`` estimator (MU or the
    encoding DNN) completes the separator.

    The stages go into ``clock`` (:class:`~vaenmf.tasks.stages.StageClock`): ``dictionary_frames`` (the speech
    and noise frames the dictionaries are fitted on), ``dictionaries`` (the fits), ``training_set`` (the
    training mixtures' spectrograms, for the methods that train on them) and ``separator`` (the DNMF
    reconstruction bases, the encoding DNN or the DRNN; for MU activations the time to set them up). What the
    dictionary fits report (e.g. VAE-NMF's final negative-weight fraction and mass) goes into ``dictionaries``
    (``speech``, ``noise``).
    """
    clock = StageClock() if clock is None else clock
    if "network" in cfg:
        from vaenmf.tasks.drnn import build_drnn_separator

        with clock.stage("training_set"):
            training_data(datamodule)  # prepared here (and kept by the data module) to be measured on its own
        with clock.stage("separator"):
            return build_drnn_separator(cfg.network, job, datamodule, int(cfg.seed))
    if "reconstruction" in cfg:
        from vaenmf.tasks.dnmf import check_reconstruction_config

        check_reconstruction_config(
            cfg.reconstruction
        )  # a bad DNMF key fails before the dictionaries are fitted
    cache = (
        DictionaryCache(job.cfg.paths.cache_dir + "/dictionaries") if cfg.get("cache_dictionaries") else None
    )
    with clock.stage("dictionary_frames"):
        speech_frames = datamodule.speech_dictionary_frames()
        noise_frames = datamodule.noise_dictionary_frames()
    with clock.stage("dictionaries"):
        W_speech, speech_stats = fit_dictionary_stage(
            job, "speech_dict", speech_frames, cfg.dictionary, cfg.seed, cache
        )
        W_noise, noise_stats = fit_dictionary_stage(
            job,
            f"noise_dict_{noise_stage_name(str(cfg.noise))}",
            noise_frames,
            cfg.dictionary,
            cfg.seed,
            cache,
        )
    if dictionaries is not None:
        dictionaries.update(speech=speech_stats, noise=noise_stats)
    if "reconstruction" in cfg or cfg.activations.name == "dnn":
        with clock.stage("training_set"):
            training_data(datamodule)
    with clock.stage("separator"):
        mask_bases = None
        if "reconstruction" in cfg:
            from vaenmf.tasks.dnmf import train_reconstruction_bases

            mask_bases = train_reconstruction_bases(
                cfg.reconstruction, job, W_speech, W_noise, datamodule, int(cfg.seed)
            )
        return build_activation_estimator(cfg, job, W_speech, W_noise, datamodule, mask_bases)


def enhance_and_score(
    separator: Separator,
    test_sets: dict[Any, list[Any]],
    workers: int = 0,
    timings: dict[str, Any] | None = None,
    input_cache: InputScoreCache | None = None,
) -> list[dict[str, Any]]:
    """Enhance every test mixture and score it: one row per mixture, in the order of ``test_sets``.

    The mixtures are enhanced in this process, one torch and BLAS thread (the separator's small products gain
    nothing from a thread pool); the scores (BSS Eval, PESQ, STOI of the estimate and of the input,
    :func:`~vaenmf.metrics.score_utterance`) are computed by a :class:`~vaenmf.metrics.pool.ScoringPool` of
    ``workers`` processes while the next mixtures are enhanced, or here when ``workers`` is 0. The input's
    scores (the unprocessed mixture's, the same for every method) come from ``input_cache`` when another job
    scored these mixtures already, and go there otherwise. The rows are the same either way.

    Args:
        separator: Noisy magnitude ``(F, T)`` -> speech magnitude ``(F, T)``.
        test_sets: ``{snr: [mixture, ...]}`` (``vaenmf.data.speech.Mixture``: ``mixture``, ``speech``, ``noise``
            waveforms, ``sr``, ``name``, ``utterance``, ``noise_kind``).
        workers: Scoring processes (0: score in this process).
        timings: When given, receives ``workers``, ``enhance_cpu_s`` (CPU seconds spent enhancing, in this
            process), ``score_cpu_s`` (CPU seconds spent scoring, in the workers or here) and
            ``input_scores_cached`` (whether the input's scores came from the cache).
        input_cache: Where the inputs' scores are shared between jobs (None: always computed).

    Returns:
        ``{"utterance", "speech_utterance", "snr", "noise", <score keys>}`` per mixture.
    """
    mixtures = [(snr, mixture) for snr, group in test_sets.items() for mixture in group]
    key = input_cache.key([m for _, m in mixtures]) if input_cache is not None else None
    cached = input_cache.load(key, len(mixtures)) if input_cache is not None and key is not None else None
    enhance_cpu = 0.0

    def enhanced() -> Iterator[tuple[dict[str, Any], tuple[Any, ...], Any]]:
        nonlocal enhance_cpu
        for i, (snr, mixture) in enumerate(mixtures):
            begin = time.process_time()
            mag, phase = magnitude_phase(mixture.mixture)
            with torch.no_grad():
                speech_mag = separator(mag)
            estimate = resynthesise(speech_mag.to(mag.dtype), phase, mixture.mixture.shape[-1])
            enhance_cpu += time.process_time() - begin
            row = {
                "utterance": mixture.name,
                "speech_utterance": mixture.utterance,
                "snr": float(snr),
                "noise": mixture.noise_kind,
            }
            waveforms = (mixture.speech, mixture.noise, estimate, mixture.mixture, mixture.sr)
            yield row, waveforms, (cached[i] if cached is not None else None)

    rows: list[dict[str, Any]] = []
    with (
        single_threaded(),
        ScoringPool(workers) as pool,
        progress_bar(total=len(mixtures), desc="enhance+score", unit="utt") as progress,
    ):
        for row, scores in pool.imap(enhanced()):
            rows.append({**row, **scores})
            progress.update()
        if input_cache is not None and key is not None and cached is None:
            input_cache.save(key, pool.input_parts)
        if timings is not None:
            timings.update(
                workers=workers,
                enhance_cpu_s=enhance_cpu,
                score_cpu_s=pool.score_cpu_s,
                input_scores_cached=cached is not None,
            )
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean of each metric per SNR (NaN PESQ values are left out of the mean and counted)."""
    by_snr: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_snr[_snr_key(row["snr"])].append(row)
    summary: dict[str, dict[str, float]] = {}
    for snr in sorted(by_snr, key=float):
        group = by_snr[snr]
        entry: dict[str, float] = {"n_utterances": len(group)}
        for metric in SUMMARY_METRICS:
            values = [float(r[metric]) for r in group if metric in r and not math.isnan(float(r[metric]))]
            entry[metric] = sum(values) / len(values) if values else float("nan")
            if len(values) < len(group):
                entry[f"{metric}_n_failed"] = len(group) - len(values)
        entry["sdr_improvement"] = entry["sdr"] - entry["sdr_input"]
        summary[snr] = entry
    return summary


def _snr_key(snr: float) -> str:
    return str(int(snr)) if float(snr).is_integer() else str(snr)


def eval_split_of(cfg: DictConfig) -> str:
    """The split a speech job scores (``eval_split``: ``validation`` or ``test``; absent: ``test``).

    Raises:
        ConfigError: Naming ``eval_split`` and its choices, for any other value.
    """
    split = cfg.get("eval_split", "test")
    if split not in EVAL_SPLITS:
        raise ConfigError(f"eval_split must be one of {list(EVAL_SPLITS)}, got {split!r}")
    return str(split)


def mismatched_test_noise(cfg: DictConfig) -> str | None:
    """The condition a speech job is tested on when it differs from its training ``noise`` (``test_noise``), or
    None (null, absent, or the same as ``noise``): mismatched-noise evaluation (:mod:`vaenmf.data.noises`).

    Raises:
        ConfigError: Naming ``test_noise``, when it is not a noise condition.
    """
    value = cfg.get("test_noise")
    if value is None:
        return None
    parse_noise(value, "test_noise")
    value = str(value).strip()
    return None if value == str(cfg.noise).strip() else value


def run(cfg: DictConfig, job: JobContext) -> dict[str, Any]:
    """Run one speech-enhancement job; returns the metrics (the caller writes ``metrics.json``)."""
    # Before anything is fitted: a bad value costs nothing.
    parse_noise(cfg.noise, "noise")
    mismatched_test_noise(cfg)
    eval_split = eval_split_of(cfg)
    workers = scoring_workers(cfg.get("scoring_workers"))
    clock = StageClock()
    with clock.stage("data"):
        datamodule = instantiate(cfg.data)
        if hasattr(datamodule, "evaluate_on"):
            # setup() then refuses a noise part too short for the utterances of the scored split (not the other
            # one), before anything is fitted.
            datamodule.evaluate_on(eval_split)
        if cfg.get("cache_features", True) and hasattr(datamodule, "use_feature_cache"):
            # Resampled noise, speech dictionary frames and training spectrograms, prepared once per sweep.
            datamodule.use_feature_cache(Path(job.cfg.paths.cache_dir) / "features")
        datamodule.setup("fit")

    dictionaries: dict[str, dict[str, float]] = {}
    separator = build_speech_separator(cfg, job, datamodule, clock, dictionaries)

    if rank_zero_only.rank != 0:
        # Other DDP ranks took part in the training stages; scoring and reporting belong to rank 0 alone.
        return {"rank": int(rank_zero_only.rank)}

    scoring: dict[str, Any] = {}
    input_cache = (
        InputScoreCache(job.cfg.paths.cache_dir + "/input_scores") if cfg.get("cache_input_scores") else None
    )
    with clock.stage("enhance_and_score"):
        rows = enhance_and_score(
            separator, datamodule.evaluation_mixtures(eval_split), workers, scoring, input_cache
        )
    if workers:
        scoring["workers_peak_rss_mb"] = round(children_peak_rss_mb(), 1)

    summary = summarise(rows)
    shortfalls = datamodule.shortfalls(eval_split)
    for entry in shortfalls:
        log.warning("short of the protocol: %s", shortfall_text(entry))
    for snr, entry in summary.items():
        log.info(
            "%s, SNR %s dB: SDR %.2f (input %.2f)  SIR %.2f  SAR %.2f  PESQ-NB %.2f  STOI %.3f  [%d utterances]",
            eval_split,
            snr,
            entry["sdr"],
            entry["sdr_input"],
            entry["sir"],
            entry["sar"],
            entry["pesq_nb"],
            entry["stoi"],
            entry["n_utterances"],
        )
    log_speech_results(job, summary, rows)  # <split>/<snr>/<metric>; W&B tables snr_summary, utterances
    return {
        "corpus": str(cfg.data.get("corpus", "demo")),
        "eval_split": eval_split,
        # What the data gave fewer of than the job asked (vaenmf.data.shortfalls); [] when nothing.
        "shortfalls": shortfalls,
        "summary": summary,
        "rows": rows,
        "dictionaries": dictionaries,
        # Wall and CPU seconds and peak memory per stage (vaenmf.tasks.stages; the scoring workers' CPU and
        # memory are in ``scoring``).
        **clock.metrics(),
        # Per trained stage, the epochs this job ran and their wall seconds (a resumed stage's earlier ones not
        # counted): what scales a short dry run's stage to the protocol's epochs (scripts/dry_run.py).
        "training_epochs": job.epoch_timings,
        "scoring": scoring,
    }
