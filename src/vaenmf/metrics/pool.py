"""Scoring enhanced utterances in worker processes: :func:`score_utterance` off the main process, in order.

The speech task enhances every test mixture in its own process (the trained separator lives there) and hands the
waveforms to a :class:`ScoringPool`, which scores them (BSS Eval, PESQ, STOI of the estimate and of the input) in
``workers`` processes while the next mixtures are enhanced. Results come back in submission order and are the
same numbers as :func:`score_utterance` called in the main process (each worker runs the same code on the same
float64 arrays with one BLAS thread, as the serial path does under ``single_threaded``); warnings a worker raises
(e.g. a PESQ failure, :class:`~vaenmf.metrics.speech.MetricWarning`) are re-raised in the main process when the
result is collected, so the job's log says the same things as a serial run.

``workers=0`` scores in the calling process (no pool). Scores are computed on one BLAS thread either way: BSS
Eval's LU solves on another thread count differ in the last bits (1e-14 dB, measured), and "the same numbers"
here means equal floats. :func:`scoring_workers` chooses the number of workers from the CPUs the job may use
(:func:`job_cpus`): ``SLURM_CPUS_PER_TASK`` on a cluster node, ``VAENMF_JOB_CPUS`` when a parallel local
launcher shares the machine between jobs, else the process's CPU affinity.

Every worker limits its BLAS and OpenMP pools to one thread (``threadpoolctl`` and the ``*_NUM_THREADS``
variables), so ``workers`` processes use ``workers`` cores, not ``workers x cores``.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from vaenmf.errors import ConfigError

__all__ = [
    "InputPart",
    "InputScoreCache",
    "ScoringPool",
    "default_start_method",
    "job_cpus",
    "score_parts",
    "scoring_workers",
]

#: Environment variables that cap the thread pools of BLAS/OpenMP libraries loaded after they are set.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
#: Set by a launcher that runs several jobs at once on one machine: the CPUs each job may use.
JOB_CPUS_VARIABLE = "VAENMF_JOB_CPUS"

_WORKER_LIMITS: Any = None  # the worker's threadpoolctl limiter, kept alive for the worker's lifetime


def job_cpus(environ: dict[str, str] | None = None) -> int:
    """The CPUs this job may use.

    ``SLURM_CPUS_PER_TASK`` (a SLURM task's allocation), else ``VAENMF_JOB_CPUS`` (set by a launcher that runs
    several jobs side by side), else the CPUs of this process's affinity mask (``os.cpu_count()`` where the
    platform has none). Never less than 1.

    Args:
        environ: The environment to read (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    for name in ("SLURM_CPUS_PER_TASK", JOB_CPUS_VARIABLE):
        value = env.get(name)
        if value:
            try:
                return max(1, int(value))
            except ValueError:
                raise ConfigError(f"{name}={value!r} must be a whole number of CPUs") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def scoring_workers(setting: int | None, environ: dict[str, str] | None = None) -> int:
    """Worker processes for scoring: ``setting`` when given (0 scores in the job's own process), else one per CPU
    of the job beyond the one that enhances (:func:`job_cpus` minus 1: none on one CPU, one on a 2-core laptop).

    The job's own process enhances the next mixtures while the workers score (enhancement is a small part of a
    mixture's cost, scoring the rest), so ``c`` CPUs keep ``c - 1`` workers and the enhancing process busy.

    Raises:
        ConfigError: If ``setting`` is not ``None`` or an integer >= 0.
    """
    if setting is None:
        return job_cpus(environ) - 1
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
        raise ConfigError(
            f"scoring_workers must be null (from the job's CPUs) or an integer >= 0, got {setting!r}"
        )
    return int(setting)


def default_start_method() -> str:
    """``fork`` where the platform has it, else ``spawn``.

    A forked worker starts at once. A spawned one is a fresh interpreter that imports the main module again:
    for ``vaenmf-train`` that is torch and Lightning, seconds of CPU per worker and per job, which on a laptop
    cost more than the pool saves. Forking a process that has torch's thread pools is safe here because the
    workers never call torch (scoring is numpy, scipy, pesq and pystoi), as PyTorch's own DataLoader workers
    are forked.
    """
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def _init_worker() -> None:
    """Start of a worker: one thread in every BLAS/OpenMP pool, the scoring libraries imported once."""
    global _WORKER_LIMITS
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    import scipy.fft  # noqa: F401  (load the libraries whose pools are limited below)
    import scipy.linalg  # noqa: F401
    import scipy.signal  # noqa: F401
    from threadpoolctl import threadpool_limits

    import vaenmf.metrics.speech  # noqa: F401

    _WORKER_LIMITS = threadpool_limits(limits=1)


Warned = list[tuple[type[Warning], str]]


def _captured(fn: Any, *args: Any) -> tuple[Any, Warned]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args)
    return result, [(w.category, str(w.message)) for w in caught]


def score_parts(
    speech: Any, noise: Any, estimate: Any, mixture: Any, sr: int = 16000, with_input: bool = True
) -> tuple[dict[str, float], Warned, dict[str, float] | None, Warned]:
    """:func:`~vaenmf.metrics.speech.score_utterance` in its two halves, each with the warnings it raised.

    The same conversions, checks and calls as :func:`score_utterance`, in the same order: the BSS Eval
    references once, then BSS Eval, PESQ and STOI of the estimate, then (``with_input``) of the unprocessed
    mixture. ``{**estimate_scores, **input_scores}`` is ``score_utterance``'s result, float for float, and the
    two warning lists in turn are the warnings it raises. The input's half depends only on the mixture, so the
    speech task computes it once per test mixture for all methods (:class:`InputScoreCache`).

    Returns:
        ``(estimate scores, their warnings, input scores or None, their warnings)``; the input's keys end in
        ``_input``.

    Raises:
        DataError: As :func:`score_utterance` (e.g. for an all-zero estimate).
    """
    from vaenmf.metrics.speech import utterance_scorer

    one, s_hat, y = utterance_scorer(speech, noise, estimate, mixture, sr)
    estimate_scores, estimate_warned = _captured(one, s_hat, "")
    if not with_input:
        return estimate_scores, estimate_warned, None, []
    input_scores, input_warned = _captured(one, y, "_input")
    return estimate_scores, estimate_warned, input_scores, input_warned


#: An utterance's input half, computed or from the cache: its scores and the warnings scoring them raised.
InputPart = tuple[dict[str, float], Warned]


def _score_item(
    args: tuple[Any, ...], given: InputPart | None
) -> tuple[dict[str, float], Warned, InputPart, float]:
    """One utterance in a worker (or here): the merged scores, the estimate's warnings, the input's half, CPU s."""
    begin = time.process_time()
    estimate_scores, estimate_warned, input_scores, input_warned = score_parts(
        *args, with_input=given is None
    )
    part: InputPart = given if given is not None else (input_scores or {}, input_warned)
    return {**estimate_scores, **part[0]}, estimate_warned, part, time.process_time() - begin


class ScoringPool:
    """Scores utterances in ``workers`` processes (or in this process for ``workers=0``), results in order.

    Use as a context manager around :meth:`imap`, which pulls utterances from an iterable (typically a generator
    that enhances each mixture when asked for it), keeps at most ``max_pending`` of them in the workers, and
    yields each one's scores in the order the utterances came: the enhancing process works on the next mixtures
    while the workers score the previous ones.

    Args:
        workers: Worker processes; 0 scores in the calling process, one utterance at a time.
        max_pending: Utterances in the workers at once (default ``2 * workers + 1``), so memory stays bounded on
            long test sets.
        start_method: How workers start (:func:`default_start_method` when None).

    Example::

        def enhanced():
            for mix in mixtures:
                yield mix.name, (mix.speech, mix.noise, separate(mix), mix.mixture, mix.sr)

        with ScoringPool(workers=2) as pool:
            for name, scores in pool.imap(enhanced()):
                ...
    """

    def __init__(self, workers: int, max_pending: int | None = None, start_method: str | None = None) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ConfigError(f"scoring workers must be an integer >= 0, got {workers!r}")
        self.workers = workers
        self.max_pending = max(1, int(max_pending)) if max_pending is not None else 2 * workers + 1
        self.start_method = start_method or default_start_method()
        self._executor: ProcessPoolExecutor | None = None
        #: CPU seconds spent scoring so far (by the workers, or by this process).
        self.score_cpu_s = 0.0
        #: The input half of every utterance yielded so far, in order (to fill an :class:`InputScoreCache`).
        self.input_parts: list[InputPart] = []

    def __enter__(self) -> ScoringPool:
        if self.workers > 0:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context(self.start_method),
                initializer=_init_worker,
            )
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._executor is not None:
            # On an error, queued utterances are dropped rather than scored for nothing.
            self._executor.shutdown(wait=True, cancel_futures=exc[0] is not None)
            self._executor = None

    def imap(
        self, items: Iterable[tuple[Any, Sequence[Any]] | tuple[Any, Sequence[Any], InputPart | None]]
    ) -> Iterator[tuple[Any, dict[str, float]]]:
        """Score ``(tag, (speech, noise, estimate, mixture, sr))`` items; yield ``(tag, scores)`` in their order.

        ``scores`` is :func:`~vaenmf.metrics.speech.score_utterance` of the waveforms (numpy arrays or torch
        tensors). An item may carry its input half (:data:`InputPart`, e.g. from an :class:`InputScoreCache`)
        as a third element: then only the estimate is scored. Warnings raised while scoring an utterance (or
        recorded with its input half) are raised again here when its result is yielded, in
        ``score_utterance``'s order.
        """
        if self._executor is None:
            if self.workers > 0:
                raise RuntimeError("ScoringPool.imap outside its `with` block")
            from threadpoolctl import threadpool_limits

            for tag, args, *given in items:
                with threadpool_limits(limits=1, user_api="blas"):
                    result = _score_item(tuple(args), given[0] if given else None)
                yield self._collect(tag, result)
            return
        pending: collections.deque[tuple[Any, Future]] = collections.deque()
        for tag, args, *given in items:
            future = self._executor.submit(_score_item, _picklable(args), given[0] if given else None)
            pending.append((tag, future))
            while len(pending) > self.max_pending:
                tag, future = pending.popleft()
                yield self._collect(tag, future.result())
        while pending:
            tag, future = pending.popleft()
            yield self._collect(tag, future.result())

    def _collect(
        self, tag: Any, result: tuple[dict[str, float], Warned, InputPart, float]
    ) -> tuple[Any, dict[str, float]]:
        scores, estimate_warned, part, cpu = result
        self.score_cpu_s += cpu
        self.input_parts.append(part)
        for category, message in (*estimate_warned, *part[1]):
            warnings.warn(message, category, stacklevel=3)
        return tag, scores


class InputScoreCache:
    """The scores of unprocessed test mixtures, on disk, shared by the jobs that score the same mixtures.

    Every method of a table scores the same test mixtures, and with them the unprocessed input
    (``sdr_input``, ``pesq_nb_input``, ...: BSS Eval of the mixture, PESQ and STOI), which is most of the
    input's half of :func:`~vaenmf.metrics.speech.score_utterance`. One file per test set,
    ``<root>/<key>.json``: the key hashes every mixture's speech, noise and mixture samples, its sample rate and
    the source code of :mod:`vaenmf.metrics` (so scores go stale when the metrics change); the file holds each
    mixture's input scores and the warnings scoring them raised (replayed when they are reused, so a job's log
    is the same). Written atomically; jobs that score the same test set at once write the same content.

    Args:
        root: The cache folder (``<paths.cache_dir>/input_scores`` in the speech task).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @staticmethod
    def key(mixtures: Sequence[Any]) -> str:
        """The key of a test set: ``mixtures`` have ``speech``, ``noise``, ``mixture`` (tensors) and ``sr``."""
        import hashlib

        from vaenmf.tasks.runtime import source_hash

        digest = hashlib.sha256(source_hash(("metrics",)).encode())
        for mix in mixtures:
            for part in (mix.speech, mix.noise, mix.mixture):
                array = np.ascontiguousarray(_picklable((part,))[0])
                digest.update(f"{array.dtype}{array.shape}".encode())
                digest.update(array.tobytes())
            digest.update(f"sr={int(mix.sr)}|".encode())
        return digest.hexdigest()[:24]

    def load(self, key: str, n: int) -> list[InputPart] | None:
        """The ``n`` mixtures' input halves (scores, warnings) filed under ``key``, or None."""
        import json

        path = self.root / f"{key}.json"
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or len(entry.get("mixtures") or ()) != n:
            return None
        return [
            (dict(m["scores"]), [(_warning_class(name), str(message)) for name, message in m["warnings"]])
            for m in entry["mixtures"]
        ]

    def save(self, key: str, parts: Sequence[InputPart]) -> None:
        """File the mixtures' input halves under ``key`` (atomically)."""
        import json

        from vaenmf.atomic import write_text_atomic

        mixtures = [
            {"scores": scores, "warnings": [[f"{c.__module__}.{c.__qualname__}", m] for c, m in warned]}
            for scores, warned in parts
        ]
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.root / f"{key}.json", json.dumps({"key": key, "mixtures": mixtures}))


def _warning_class(name: str) -> type[Warning]:
    """The warning class named ``module.qualname`` (``UserWarning`` if it cannot be found)."""
    import importlib

    module, _, qualname = str(name).rpartition(".")
    try:
        found = getattr(importlib.import_module(module or "builtins"), qualname)
    except (ImportError, AttributeError, ValueError):
        return UserWarning
    return found if isinstance(found, type) and issubclass(found, Warning) else UserWarning


def _picklable(args: Sequence[Any]) -> tuple[Any, ...]:
    """The waveforms as numpy arrays (torch tensors converted: cheap to pickle, no torch in the worker)."""
    return tuple(x.detach().cpu().numpy() if hasattr(x, "detach") else x for x in args)
