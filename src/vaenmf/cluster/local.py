"""``launcher=parallel``: the jobs of a local ``-m`` sweep in a few worker processes at once.

Hydra's basic launcher runs a sweep's jobs one after another in one process. Most of a job's work is on one
thread (mini-batch training of the small networks, the per-utterance scoring), so on a machine with ``c`` cores
``c`` jobs side by side finish the sweep up to ``c`` times sooner. This launcher runs ``n_jobs`` jobs at a time,
each in a worker process forked from the sweep's process (before any job ran), each limited to ``cpus_per_job``
threads (torch, BLAS, and the job's scoring pool through ``VAENMF_JOB_CPUS``), and returns the jobs' results in
sweep order as Hydra expects. Job numbers, output folders and files are those of the basic launcher; every job
computes exactly what it computes there (its stages are seeded by their own identity, and the thread counts do
not change the numbers: ``tests/test_parallel_launcher.py`` compares a parallel sweep's metrics.json with a
serial one's).

Two things keep side-by-side jobs from wasting work or oversubscribing the machine:

* **Dictionary groups.** Jobs with the same dictionary learner, data and seed share fitted dictionaries through
  the dictionary cache (``cache_dictionaries``): the speech dictionary of ``method=vae_nmf`` serves
  ``vae_nmf_mu`` and every noise. The first job of such a group runs alone; the others start when it has
  finished (meanwhile other jobs fill the slots), so no dictionary is fitted twice at the same time.
* **Machine-wide slots.** With ``slots`` (a folder; ``VAENMF_JOB_SLOTS``), several sweeps started at once (as
  ``scripts/reproduce.py --jobs`` does) share ``n_jobs`` slots: a job starts only when it holds one of the slot
  lock files, and the dictionary groups are kept across the sweeps as well (lock and marker files there).

Jobs' progress bars are turned off in the workers (several processes drawing on one terminal garble each
other); the launcher logs one line when a job starts and one when it ends, with its wall time.

Needs ``fork`` (Linux, macOS); where it is missing the sweep runs one job at a time, as the basic launcher does.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import IO, Any

from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from vaenmf.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["JobFailed", "ParallelLauncher", "SlotFolder", "dictionary_group"]

#: Seconds between looks at the machine-wide slots when every one is taken.
POLL_S = 0.25


class JobFailed(RuntimeError):
    """A job of a parallel sweep failed (raised by Hydra's sweeper after every job ended, as for a serial one)."""


def dictionary_group(cfg: DictConfig) -> str | None:
    """The key of the jobs that share fitted dictionaries with this one, or None when it fits none (the DRNN).

    Jobs share the speech dictionary when their dictionary learner, data (except the noise conditions) and seed are
    equal, and the dictionary cache is on.
    """
    if "dictionary" not in cfg or not cfg.get("cache_dictionaries", False):
        return None
    data = OmegaConf.to_container(cfg.data, resolve=True) if "data" in cfg else {}
    assert isinstance(data, dict)
    data.pop("noise", None)
    data.pop("test_noise", None)
    payload = {
        "task": cfg.get("task"),
        "seed": cfg.get("seed"),
        "cache": str(cfg.paths.cache_dir) if "paths" in cfg else None,
        "dictionary": OmegaConf.to_container(cfg.dictionary, resolve=True),
        "data": data,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


class SlotFolder:
    """Lock files in a folder, shared by processes on one machine: ``n`` job slots and dictionary groups.

    A slot is ``slot-<i>.lock`` held with ``flock``; a group's first job holds ``group-<key>.lock`` while it runs
    and leaves ``group-<key>.done`` when it ends. Locks are released by the kernel when their holder dies, so a
    killed sweep never leaves a slot taken.

    Args:
        folder: Where the lock files are (created).
        n: Number of slots.
    """

    def __init__(self, folder: Path, n: int) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.n = int(n)

    def _try_lock(self, name: str) -> IO[str] | None:
        handle = open(self.folder / name, "a+")  # noqa: SIM115  (held until released)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return None
        return handle

    def try_slot(self) -> IO[str] | None:
        """A free slot's lock (hold it while the job runs; :meth:`release` it), or None when all are taken."""
        for i in range(self.n):
            handle = self._try_lock(f"slot-{i}.lock")
            if handle is not None:
                return handle
        return None

    def group_done(self, group: str) -> bool:
        return (self.folder / f"group-{group}.done").exists()

    def try_group(self, group: str) -> IO[str] | None:
        """The lock of the group's first job, or None when another process's job holds it."""
        return self._try_lock(f"group-{group}.lock")

    def finish_group(self, group: str) -> None:
        (self.folder / f"group-{group}.done").touch()

    @staticmethod
    def release(handle: IO[str] | None) -> None:
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


@dataclass
class _Job:
    idx: int
    overrides: list[str]
    group: str | None
    started: float = 0.0
    slot: IO[str] | None = None
    group_lock: IO[str] | None = None
    result: JobReturn | None = None
    worker: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _limit_threads(cpus: int) -> Any:
    """Limit torch, BLAS and OpenMP to ``cpus`` threads in this (worker) process, and tell the job its CPUs."""
    from threadpoolctl import threadpool_limits

    from vaenmf.metrics.pool import JOB_CPUS_VARIABLE, THREAD_VARIABLES

    for name in THREAD_VARIABLES:
        os.environ[name] = str(cpus)
    os.environ[JOB_CPUS_VARIABLE] = str(cpus)
    try:
        import torch

        torch.set_num_threads(cpus)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return threadpool_limits(limits=cpus)


def _quiet_bars() -> None:
    """No progress bars in this (worker) process: the package's (``VAENMF_PROGRESS=0``) and any other tqdm bar
    (tqdm reads its ``TQDM_*`` variables when it is imported, which the sweep's process did before the fork)."""
    import functools

    import tqdm

    from vaenmf.callbacks import PROGRESS_VARIABLE

    os.environ[PROGRESS_VARIABLE] = "0"
    tqdm.tqdm.__init__ = functools.partialmethod(tqdm.tqdm.__init__, disable=True)  # type: ignore[method-assign]


def _worker_main(
    conn: Connection,
    launcher: ParallelLauncher,
    cpus: int,
) -> None:
    """A worker: run the jobs the parent sends (``(idx, overrides)``) until it sends None; answer each."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    limits = _limit_threads(cpus)  # noqa: F841  (kept alive: the limits last while it exists)
    _quiet_bars()
    while True:
        item = conn.recv()
        if item is None:
            return
        idx, overrides = item
        outcome: dict[str, Any] = {"idx": idx}
        try:
            ret = launcher._run_one(idx, overrides)
        except (
            BaseException
        ) as err:  # SystemExit(130) after Ctrl-C, KeyboardInterrupt, a crash of Hydra itself
            outcome.update(status="interrupted" if _is_interrupt(err) else "failed", error=_describe(err))
            outcome["traceback"] = traceback.format_exc()
            conn.send(outcome)
            if outcome["status"] == "interrupted":
                return
            continue
        if ret.status == JobStatus.COMPLETED:
            outcome["status"] = "ok"
        else:
            err = ret._return_value
            outcome.update(status="failed", error=_describe(err))
            outcome["traceback"] = "".join(traceback.format_exception(err)) if err is not None else ""
        conn.send(outcome)


def _describe(err: BaseException | None) -> str:
    return f"{type(err).__name__}: {err}".rstrip(": ") if err is not None else "unknown error"


def _is_interrupt(err: BaseException) -> bool:
    if isinstance(err, KeyboardInterrupt):
        return True
    return isinstance(err, SystemExit) and err.code in (130, 143)


class ParallelLauncher(Launcher):
    """Hydra launcher that runs ``n_jobs`` jobs of a sweep at once in forked worker processes (module docstring).

    Args:
        n_jobs: Jobs at a time (None: one per CPU of the machine, :func:`vaenmf.metrics.pool.job_cpus`).
        cpus_per_job: Threads of each job (None: the CPUs divided among the ``n_jobs`` jobs, at least 1).
        slots: A folder of machine-wide slots shared with other sweeps (None: this sweep's ``n_jobs`` only).
    """

    def __init__(self, n_jobs: int | None = None, cpus_per_job: int | None = None, slots: str | None = None):
        super().__init__()
        from vaenmf.metrics.pool import job_cpus

        for name, value in (("n_jobs", n_jobs), ("cpus_per_job", cpus_per_job)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"hydra.launcher.{name} must be null or an integer >= 1, got {value!r}")
        cpus = job_cpus()
        self.n_jobs = int(n_jobs or cpus)
        self.cpus_per_job = int(cpus_per_job or max(1, cpus // self.n_jobs))
        self.slots = str(slots) if slots else None
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    # ------------------------------------------------------------------------------------------- one job
    def _sweep_config(self, idx: int, overrides: Sequence[str]) -> DictConfig:
        assert self.hydra_context is not None and self.config is not None
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = idx
            sweep_config.hydra.job.num = idx
        return sweep_config

    def _run_one(self, idx: int, overrides: Sequence[str]) -> JobReturn:
        """One job, exactly as Hydra's basic launcher runs it."""
        assert self.hydra_context is not None and self.task_function is not None and self.config is not None
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=self._sweep_config(idx, overrides),
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return ret

    def _group_of(self, idx: int, overrides: Sequence[str]) -> str | None:
        config = self._sweep_config(idx, overrides)
        try:
            with open_dict(config):
                del config["hydra"]
            return dictionary_group(config)
        except Exception as err:  # does not compose or resolve here: the job fails with its own message
            log.debug("dictionary group of job #%d: %s", idx, err)
            return None

    # ------------------------------------------------------------------------------------------- a sweep
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        jobs = [
            _Job(initial_job_idx + i, list(o), self._group_of(initial_job_idx + i, o))
            for i, o in enumerate(job_overrides)
        ]
        n_workers = min(self.n_jobs, len(jobs))
        if n_workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            if n_workers > 1:
                log.warning(
                    "launcher=parallel needs fork, which this platform lacks: running one job at a time"
                )
            return self._launch_serially(jobs)
        shared = f", sharing {self.slots} with other sweeps" if self.slots else ""
        log.info(
            f"Launching {len(jobs)} jobs locally, {n_workers} at a time, {self.cpus_per_job} CPU(s) each{shared}"
        )
        for job in jobs:
            log.info(f"\t#{job.idx} : {' '.join(filter_overrides(job.overrides))}")
        with _Scheduler(self, jobs, n_workers) as scheduler:
            scheduler.run()
        failed = [job for job in jobs if job.result is None or job.result.status != JobStatus.COMPLETED]
        log.info(
            "Sweep finished: %d job(s) ok%s", len(jobs) - len(failed),
            f", {len(failed)} failed (#{', #'.join(str(j.idx) for j in failed)})" if failed else "",
        )  # fmt: skip
        if any(job.extra.get("interrupted") for job in jobs):
            raise SystemExit(130)
        return [job.result for job in jobs if job.result is not None]

    def _launch_serially(self, jobs: list[_Job]) -> list[JobReturn]:
        log.info(f"Launching {len(jobs)} jobs locally")
        results = []
        for job in jobs:
            log.info(f"\t#{job.idx} : {' '.join(filter_overrides(job.overrides))}")
            results.append(self._run_one(job.idx, job.overrides))
        return results


class _Scheduler:
    """The parent's side of a parallel sweep: start jobs on idle workers when they may run, collect answers."""

    def __init__(self, launcher: ParallelLauncher, jobs: list[_Job], n_workers: int) -> None:
        self.launcher = launcher
        self.jobs = jobs
        self.n_workers = n_workers
        self.slots = SlotFolder(Path(launcher.slots), launcher.n_jobs) if launcher.slots else None
        self.local_groups: dict[str, str] = {}  # group -> "running" | "done" (without a slot folder)
        self.workers: list[tuple[multiprocessing.Process, Connection]] = []
        self.idle: list[int] = []
        self.dead: set[int] = set()
        self.running: dict[int, _Job] = {}  # worker -> job
        self.stopping = False

    def __enter__(self) -> _Scheduler:
        return self

    def __exit__(self, *exc: Any) -> None:
        for job in self.running.values():
            self._release(job, finished=False)
        for _, conn in self.workers:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
        deadline = time.monotonic() + (60 if exc[0] is None else 30)
        for process, _ in self.workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()  # SIGTERM: the job records itself as interrupted
                process.join(10)

    def _worker(self) -> int | None:
        """An idle worker (a new one forked while fewer than ``n_workers`` exist), or None."""
        if self.idle:
            return self.idle.pop()
        if len(self.workers) - len(self.dead) < self.n_workers:
            ctx = multiprocessing.get_context("fork")
            parent, child = ctx.Pipe()
            process = ctx.Process(
                target=_worker_main,
                args=(child, self.launcher, self.launcher.cpus_per_job),
                name=f"vaenmf-job-worker-{len(self.workers)}",
                daemon=False,
            )
            process.start()
            child.close()
            self.workers.append((process, parent))
            return len(self.workers) - 1
        return None

    # ------------------------------------------------------------------------------------- eligibility
    def _may_start(self, job: _Job) -> bool:
        """Take what ``job`` needs to start now (a machine-wide slot, its group's first place), or False."""
        if job.group is not None:
            if self.slots is not None:
                if not self.slots.group_done(job.group):
                    job.group_lock = self.slots.try_group(job.group)
                    if job.group_lock is None:
                        return False
                    if self.slots.group_done(job.group):  # finished while we took the lock
                        SlotFolder.release(job.group_lock)
                        job.group_lock = None
            else:
                state = self.local_groups.get(job.group)
                if state == "running":
                    return False
        if self.slots is not None:
            job.slot = self.slots.try_slot()
            if job.slot is None:
                SlotFolder.release(job.group_lock)
                job.group_lock = None
                return False
        if job.group is not None and self.slots is None and job.group not in self.local_groups:
            self.local_groups[job.group] = "running"
            job.extra["first_of_group"] = True
        return True

    def _release(self, job: _Job, finished: bool) -> None:
        if job.group is not None:
            if job.group_lock is not None:
                if finished:
                    assert self.slots is not None
                    self.slots.finish_group(job.group)
                SlotFolder.release(job.group_lock)
                job.group_lock = None
            elif job.extra.pop("first_of_group", False):
                self.local_groups[job.group] = "done"
        SlotFolder.release(job.slot)
        job.slot = None

    def _pending(self) -> Iterator[_Job]:
        return (job for job in self.jobs if job.result is None and job.worker is None)

    # ------------------------------------------------------------------------------------------ the loop
    def run(self) -> None:
        total = len(self.jobs)
        done = 0
        while True:
            if not self.stopping:
                self._start_what_can_start()
            if not self.running and (self.stopping or next(self._pending(), None) is None):
                return
            conns = {self.workers[w][1]: w for w in self.running}
            sentinels = {self.workers[w][0].sentinel: w for w in self.running}
            for item in wait([*conns, *sentinels], timeout=POLL_S):
                w = conns[item] if item in conns else sentinels[item]  # type: ignore[index]
                if w not in self.running:
                    continue  # answered through the other handle already
                conn = self.workers[w][1]
                if item in sentinels and not conn.poll():
                    outcome = {"status": "failed", "error": "the worker process died"}
                else:
                    try:
                        outcome = conn.recv()
                    except (EOFError, OSError):
                        outcome = {"status": "failed", "error": "the worker process died"}
                self._finish(w, outcome)
                done += 1
                log.info("[%d/%d jobs done]", done, total)

    def _start_what_can_start(self) -> None:
        for job in list(self._pending()):
            if len(self.running) >= self.n_workers:
                return
            if not self._may_start(job):
                continue
            w = self._worker()
            if w is None:  # pragma: no cover - len(running) < n_workers guarantees one
                self._release(job, finished=False)
                return
            job.worker, job.started = w, time.monotonic()
            self.running[w] = job
            log.info(f"#{job.idx} started: {' '.join(filter_overrides(job.overrides))}")
            self.workers[w][1].send((job.idx, job.overrides))

    def _finish(self, w: int, outcome: dict[str, Any]) -> None:
        job = self.running.pop(w)
        status = outcome.get("status")
        elapsed = time.monotonic() - job.started
        self._release(job, finished=True)
        if self.workers[w][0].is_alive() and status != "interrupted":
            self.idle.append(w)
        else:
            self.dead.add(w)
        if status == "ok":
            job.result = JobReturn(overrides=job.overrides, status=JobStatus.COMPLETED)
            job.result.return_value = None
            log.info(f"#{job.idx} done in {elapsed:.0f} s")
            return
        error = outcome.get("error", "unknown error")
        job.result = JobReturn(overrides=job.overrides, status=JobStatus.FAILED)
        job.result.return_value = JobFailed(
            f"job #{job.idx} ({' '.join(filter_overrides(job.overrides))}): {error}"
        )
        if status == "interrupted":
            job.extra["interrupted"] = True
            self.stopping = True
            log.error(f"#{job.idx} interrupted after {elapsed:.0f} s; no further job starts")
        else:
            log.error(f"#{job.idx} failed after {elapsed:.0f} s: {error}")
