"""The launcher of ``launcher=slurm``: Hydra's submitit SLURM launcher, plus what a cluster user needs.

Before anything is submitted, for every job of the sweep:

1. its DDP/SLURM settings are checked (:func:`vaenmf.cluster.check_launch_settings`): one message naming the
   keys, and nothing is submitted;
2. when jobs of this sweep folder are still in the SLURM queue (a second submission of the same
   ``hydra.sweep.dir`` while the first array runs), nothing is submitted: the queued jobs write their results
   themselves, and two copies of one job would write the same folder;
3. a job whose ``metrics.json`` says ``status: ok`` with the same config hash and git commit as the job about to
   be submitted is not submitted again (rerunning a sweep whose submitting process died, with
   ``hydra.sweep.dir=<that sweep>``): only unfinished jobs run, each resuming from its checkpoints.

While the array runs, submitit follows the jobs with ``sacct``; on a cluster without job accounting (no
slurmdbd: ``sacct`` answers "Slurm accounting storage is disabled") it would print a warning at every poll.
its ``QueueWatcher`` prints one warning and follows the jobs with ``squeue`` instead.

Job numbers, output folders and the submitit folder layout are those of the stock launcher.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _SubmititSlurmLauncher
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from vaenmf.cluster import check_launch_settings
from vaenmf.errors import ConfigError

log = logging.getLogger(__name__)

_TARGET = "hydra_plugins.vaenmf_launcher.SlurmLauncher"
#: SLURM states of a job that is still queued or running.
ACTIVE_STATES = (
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SUSPENDED",
    "STAGE_OUT",
    "SIGNALING",
)


def _queue_watcher_class() -> type:
    """:class:`QueueWatcher`, built on first use so that importing this module (Hydra's plugin scan does, at every
    start of ``vaenmf-train``) does not import submitit."""
    global _QUEUE_WATCHER
    if _QUEUE_WATCHER is not None:
        return _QUEUE_WATCHER
    from submitit.slurm.slurm import SlurmInfoWatcher

    class QueueWatcher(SlurmInfoWatcher):
        """submitit's job watcher, that falls back to ``squeue`` (once, with one warning) when ``sacct`` fails.

        ``squeue -t all`` lists finished jobs for ``MinJobAge`` seconds (300 by default) with their final state; a
        job it no longer lists is reported as ``NOT_IN_QUEUE``, which submitit treats as finished: its result file
        then decides whether it succeeded, and a job that left none is reported as failed, with its log.
        """

        use_squeue = False

        def update(self) -> None:
            if not self.use_squeue:
                command = self._make_command()
                if command is None:
                    return
                self._num_calls += 1
                try:
                    output = subprocess.run(command, capture_output=True, check=True, timeout=120).stdout
                except (OSError, subprocess.SubprocessError) as err:
                    detail = getattr(err, "stderr", None)
                    detail = (
                        detail.decode(errors="replace").strip() if isinstance(detail, bytes) else str(err)
                    )
                    log.warning(
                        "sacct is unavailable (%s): following the jobs with squeue instead (printed once; a cluster "
                        "without job accounting is fine)",
                        detail or err,
                    )
                    self.use_squeue = True
                else:
                    self._output = output
                    self._info_dict.update(self.read_info(output))
                    self._after_update()
                    return
            self._update_from_squeue()

        def _update_from_squeue(self) -> None:
            pending = self._registered - self._finished
            arrays = sorted({job_id.split("_")[0] for job_id in pending})
            if not arrays:
                return
            self._num_calls += 1
            # All of this user's jobs in one call (finished ones stay listed for MinJobAge seconds).
            command = ["squeue", "-h", "-r", "--me", "-t", "all", "-o", "%i|%T|%N"]
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.SubprocessError) as err:
                log.debug("squeue failed: %s", err)
                self._last_status_check = time.time()
                return
            seen: dict[str, dict[str, str]] = {}
            for line in result.stdout.splitlines():
                parts = line.strip().split("|")
                if len(parts) == 3 and parts[1]:
                    seen[parts[0]] = {"JobID": parts[0], "State": parts[1].split()[0], "NodeList": parts[2]}
            if result.returncode == 0:
                for job_id in pending:
                    seen.setdefault(job_id, {"JobID": job_id, "State": "NOT_IN_QUEUE", "NodeList": ""})
            self._info_dict.update(seen)
            self._after_update()

        def _after_update(self) -> None:
            self._last_status_check = time.time()
            for job_id in self._registered - self._finished:
                if self.is_done(job_id, mode="cache"):
                    self._finished.add(job_id)

    _QUEUE_WATCHER = QueueWatcher
    return QueueWatcher


_QUEUE_WATCHER: type | None = None


def install_queue_watcher() -> None:
    """Make every submitit SLURM job of this process follow its state with ``QueueWatcher``: ``sacct``, or
    ``squeue`` (after one warning) on a cluster without job accounting."""
    from submitit.slurm.slurm import SlurmJob

    watcher = _queue_watcher_class()
    if not isinstance(SlurmJob.watcher, watcher):
        SlurmJob.watcher = watcher(delay_s=600)


def queued_jobs_of(submitit_root: Path) -> dict[str, str]:
    """Jobs of one sweep (the ids of the folders under its ``.submitit``) that SLURM still has queued or running."""
    if not submitit_root.is_dir():
        return {}
    ids = {path.name for path in submitit_root.iterdir() if path.is_dir()}
    if not ids:
        return {}
    try:
        result = subprocess.run(
            ["squeue", "-h", "-r", "--me", "-o", "%i|%T"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    active = {}
    for line in result.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        if (job_id in ids or job_id.split("_")[0] in ids) and state.split()[0] in ACTIVE_STATES:
            active[job_id] = state
    return active


def finished_job(job_dir: Path, expected_hash: str, expected_commit: str) -> tuple[bool, str]:
    """Whether ``job_dir/metrics.json`` is a complete result of the same config and code, and why not."""
    path = job_dir / "metrics.json"
    if not path.is_file():
        return False, "no metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return False, f"unreadable metrics.json ({err})"
    if metrics.get("status") != "ok":
        return False, f"status {metrics.get('status')!r}"
    if metrics.get("config_hash") != expected_hash:
        return False, f"config changed (hash {metrics.get('config_hash')} -> {expected_hash})"
    if metrics.get("git_commit") != expected_commit:
        return False, f"code changed (commit {metrics.get('git_commit')} -> {expected_commit})"
    return True, "finished"


class VaenmfSlurmLauncher(_SubmititSlurmLauncher):
    """Hydra's submitit SLURM launcher with settings checks, skipping of finished jobs and a quiet watcher.

    Hydra takes launchers from the ``hydra_plugins`` package only: ``launcher=slurm`` names
    ``hydra_plugins.vaenmf_launcher.SlurmLauncher``, a subclass with no code of its own.
    """

    def _job_config(self, overrides: Sequence[str], idx: int) -> tuple[DictConfig, Path]:
        """The job's config as the array task will compose it, with its output folder filled in."""
        assert self.hydra_context is not None and self.config is not None
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(sweep_config.hydra.job):
            sweep_config.hydra.job.num = idx
        job_dir = Path(str(sweep_config.hydra.sweep.dir)) / str(
            OmegaConf.select(sweep_config, "hydra.sweep.subdir")
        )
        with read_write(sweep_config.hydra.runtime), open_dict(sweep_config.hydra.runtime):
            sweep_config.hydra.runtime.output_dir = os.path.abspath(job_dir)
        return sweep_config, job_dir

    def _plan(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> tuple[list, list]:
        """Check every job, then split the sweep into jobs to submit and jobs already finished."""
        from vaenmf.tasks.runtime import config_hash, git_commit

        params = {**self.params, "_target_": _TARGET}
        commit = git_commit()
        submit, finished = [], []
        errors = []
        master = HydraConfig.instance().cfg
        try:
            for offset, overrides in enumerate(job_overrides):
                idx = initial_job_idx + offset
                sweep_config, job_dir = self._job_config(overrides, idx)
                label = f"job #{idx} ({' '.join(filter_overrides(overrides)) or 'no overrides'})"
                try:
                    check_launch_settings(sweep_config, launcher=params, environ={}, context=label)
                except ConfigError as err:
                    errors.append(str(err))
                    continue
                HydraConfig.instance().set_config(sweep_config)
                task_cfg = copy.deepcopy(sweep_config)
                with read_write(task_cfg), open_dict(task_cfg):
                    del task_cfg["hydra"]
                try:
                    expected = config_hash(task_cfg)
                except Exception as err:  # does not resolve here: the job fails with its own message
                    log.debug("config hash of %s: %s", label, err)
                    expected = ""
                done, why = finished_job(job_dir, expected, commit) if expected else (False, "")
                if done:
                    finished.append((idx, overrides, sweep_config, task_cfg, job_dir))
                else:
                    submit.append((idx, overrides, why))
        finally:
            if master is not None:
                HydraConfig.instance().set_config(master)
        if errors:
            print("vaenmf-train: error: " + "\n".join(errors), file=sys.stderr)
            raise SystemExit(2)
        return submit, finished

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        assert len(job_overrides) > 0
        install_queue_watcher()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        active = queued_jobs_of(sweep_dir / ".submitit")
        if active:
            listed = ", ".join(f"{job} {state}" for job, state in sorted(active.items()))
            print(
                f"vaenmf-train: error: jobs of the sweep {sweep_dir} are still in the SLURM queue ({listed}); they "
                "write their results themselves. Wait for them (squeue --me) and run vaenmf-report on the sweep, "
                "or scancel them before submitting this sweep again.",
                file=sys.stderr,
            )
            raise SystemExit(2)
        submit, finished = self._plan(job_overrides, initial_job_idx)

        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        results: dict[int, JobReturn] = {}
        for idx, overrides, sweep_config, task_cfg, job_dir in finished:
            log.info(
                f"\t#{idx} : {' '.join(filter_overrides(overrides))}  [finished: {job_dir}/metrics.json, not resubmitted]"
            )
            ret = JobReturn(
                overrides=list(overrides),
                cfg=task_cfg,
                hydra_cfg=sweep_config,
                working_dir=os.getcwd(),
                task_name=str(sweep_config.hydra.job.name),
                status=JobStatus.COMPLETED,
            )
            ret.return_value = None
            results[idx] = ret
        if submit:
            executor = self._executor()
            job_params: list[Any] = []
            for idx, overrides, why in submit:
                note = f"  [{why}]" if why and why != "no metrics.json" else ""
                log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}{note}")
                job_params.append(
                    (list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state())
                )
            jobs = executor.map_array(self, *zip(*job_params, strict=True))
            ids = sorted({job.job_id.split("_")[0] for job in jobs})
            log.info(
                "Submitted %d job(s) as SLURM array %s; this process waits for them (squeue --me; logs in %s)",
                len(jobs),
                ",".join(ids),
                sweep_dir / ".submitit",
            )
            for (idx, overrides, _), job in zip(submit, jobs, strict=True):
                try:
                    results[idx] = job.results()[0]
                except (
                    Exception
                ) as err:  # killed, cancelled, out of memory: the other jobs are still waited for
                    log.error("job #%d (SLURM job %s) ended without a result: %s", idx, job.job_id, err)
                    results[idx] = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
                    results[idx].return_value = err
            failed = sorted(idx for idx, ret in results.items() if ret.status != JobStatus.COMPLETED)
            log.info(
                "Sweep finished: %d job(s) ok%s; results in %s (tables: vaenmf-report %s --out <folder>)",
                len(results) - len(failed),
                f", {len(failed)} failed (#{', #'.join(map(str, failed))})" if failed else "",
                sweep_dir,
                sweep_dir,
            )
        elif finished:
            log.info("Every job of this sweep is finished; nothing submitted")
        return [results[idx] for idx in sorted(results)]

    def _executor(self) -> Any:
        """The submitit executor with this launcher's parameters (as the stock launcher builds it)."""
        import submitit

        params = self.params
        init_params = {"folder": params["submitit_folder"]}
        specific_init_keys = {"max_num_timeout"}
        init_params.update({f"{self._EXECUTOR}_{x}": y for x, y in params.items() if x in specific_init_keys})
        init_keys = specific_init_keys | {"submitit_folder"}
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
        baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                x if x in baseparams else f"{self._EXECUTOR}_{x}": y
                for x, y in params.items()
                if x not in init_keys
            }
        )
        return executor
