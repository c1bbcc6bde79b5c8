"""``vaenmf-train``: the Hydra entry point. One call runs one job (or, with ``-m``, a sweep of jobs).

Examples::

    vaenmf-train experiment=smoke
    vaenmf-train method=nmf noise=babble seed=1 logger=csv
    vaenmf-train -m experiment=table1
    vaenmf-train --cfg job
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from vaenmf.atomic import write_text_atomic
from vaenmf.cluster import check_launch_settings
from vaenmf.errors import VaenmfError
from vaenmf.jobfile import COMPONENT_GROUPS, job_identity
from vaenmf.tasks.runtime import REPO_ROOT, config_hash, git_commit

log = logging.getLogger("vaenmf.train")


def _config_dir() -> Path:
    env = os.environ.get("VAENMF_CONFIG_DIR")
    return Path(env).resolve() if env else REPO_ROOT / "conf"


CONFIG_DIR = _config_dir()


def _finish_wandb() -> None:
    # A W&B run left open would absorb the next job of an in-process multirun.
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


class JobInterrupted(KeyboardInterrupt):
    """The job was stopped by a signal (SIGINT, SIGTERM): recorded as ``status: interrupted``."""


def _is_interrupt(err: BaseException) -> bool:
    """Ctrl-C or SIGTERM, also when Lightning turned it into ``SystemExit`` after a graceful shutdown."""
    if isinstance(err, KeyboardInterrupt):
        return True
    return isinstance(err, SystemExit) and isinstance(err.__context__, KeyboardInterrupt)


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise JobInterrupted(f"signal {signum}")


def run_job(cfg: DictConfig, output_dir: Path | None = None) -> dict[str, Any]:
    """Run the configured task in its job folder and record it (:mod:`vaenmf.tasks.jobdir`).

    The folder is locked for the job; a folder that holds a job of another config is refused before any work; a
    complete earlier result of the same job is returned without rerunning it; ``metrics.json`` is written also
    when the job fails or is interrupted (``status: failed`` / ``interrupted``), except that a failure never
    replaces a complete result, and every attempt is logged in ``attempts.jsonl``.

    Args:
        cfg: The composed config.
        output_dir: The job directory; default Hydra's ``runtime.output_dir``.

    Returns:
        The metrics written (or the complete ones of an earlier attempt).
    """
    import signal

    import pytorch_lightning as pl
    from pytorch_lightning.utilities import rank_zero_only

    from vaenmf.tasks import check_job_config, get_task
    from vaenmf.tasks.checks import check_job_values
    from vaenmf.tasks.inputs import input_stamps
    from vaenmf.tasks.jobdir import JobDirectory
    from vaenmf.tasks.runtime import JobContext, config_record

    output_dir = Path(output_dir or HydraConfig.get().runtime.output_dir)
    header = {
        **job_identity(cfg),
        "seed": cfg.get("seed"),
        "git_commit": git_commit(),
        "output_dir": str(output_dir),
    }
    # Under SLURM + DDP every rank runs this job; only global rank 0 locks, writes and records (DESIGN.md).
    is_rank_zero = rank_zero_only.rank == 0
    folder = JobDirectory(output_dir, enabled=is_rank_zero)
    started = time.time()
    metrics: dict[str, Any] = {}
    outcome = "ran"  # or "refused" (another config's folder), "skipped" (complete already)
    # SIGTERM (scancel, a cluster's time limit) ends the job as Ctrl-C does: recorded as interrupted.
    previous_handler = signal.getsignal(signal.SIGTERM)
    if previous_handler is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_interrupted)
    job = JobContext(cfg, output_dir)
    try:
        with folder:
            try:
                # Before anything resolves the config: a method or data of another task is one clear message.
                check_job_config(cfg, CONFIG_DIR)
                check_job_values(cfg)
                check_launch_settings(cfg)  # inconsistent DDP/SLURM settings
                header["config_hash"] = config_hash(cfg)
                stamps = input_stamps(cfg)
                if stamps:  # the user's own files named by path: a changed file reruns the job
                    header["input_stamps"] = stamps
                try:
                    done = folder.previous_result(config_record(cfg), header["git_commit"], stamps)
                except VaenmfError:
                    outcome = "refused"
                    raise
                if done is not None:
                    log.info(
                        "%s holds this job's complete result (metrics.json); not running it again", output_dir
                    )
                    outcome, metrics = "skipped", done
                    return done
                if is_rank_zero:
                    write_text_atomic(output_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
                pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
                if cfg.get("torch_threads"):
                    import torch

                    torch.set_num_threads(int(cfg.torch_threads))
                task = get_task(str(cfg.task))
                metrics = {**header, **task(cfg, job), "status": "ok"}
                return metrics
            except BaseException as err:
                status = "interrupted" if _is_interrupt(err) else "failed"
                # Lightning turns Ctrl-C into SystemExit(1) after its graceful shutdown: name the interrupt.
                cause = err.__context__ if isinstance(err, SystemExit) and status == "interrupted" else err
                metrics = {
                    **header,
                    "status": status,
                    "error": f"{type(cause).__name__}: {cause}".rstrip(": "),
                }
                if status == "failed" and not isinstance(err, VaenmfError):
                    metrics["traceback"] = traceback.format_exc()
                raise
            finally:
                if outcome == "ran":
                    metrics["wall_time_s"] = time.time() - started
                    metrics["config"] = config_record(cfg)
                    if folder.record(metrics) and metrics.get("status") == "ok":
                        log.info("metrics.json written to %s", output_dir)
                else:  # the folder's metrics.json stays as it is (another config's, or this job's complete one)
                    folder.log_attempt({**metrics, "status": outcome} if outcome == "skipped" else metrics)
    finally:
        job.finish(str(metrics.get("status", "failed")))  # ends the job's W&B run, prints `wandb sync`
        _finish_wandb()
        if previous_handler is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        run_job(cfg)
    except VaenmfError as err:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweep goes on with the other jobs and reports this one at the end
        # One message, on stderr (metrics.json in the job directory records it too).
        print(f"vaenmf-train: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except BaseException as err:
        if not _is_interrupt(err):
            raise
        # One line, and the sweep stops here (a multirun's later jobs do not start).
        where = HydraConfig.get().runtime.output_dir
        print(f"vaenmf-train: interrupted; {where}/metrics.json records status interrupted", file=sys.stderr)
        raise SystemExit(130) from None


#: Spellings of earlier versions, and what replaced them.
RENAMED_GROUPS = {
    "model": "method=<name> (a column of the paper's tables or an ablation row: nmf, dnmf, drnn, vae_nmf, "
    "nmf_dnn, vae_nmf_mu); the dictionary learner's settings are dictionary.<key> (e.g. dictionary.rank=20, "
    "dictionary.mu_iterations for NMF, dictionary.epochs for VAE-NMF)",
    "separator": "part of the method: activations.<key> for its activation estimator (e.g. "
    "activations.mu_iterations=50, activations.epochs=10), network.<key> for the DRNN; the ablation rows are "
    "method=nmf_dnn and method=vae_nmf_mu",
}
#: Top-level keys that exist only in one task's config.
TASK_KEYS = {
    "speech": ("noise", "test_noise", "eval_split", "activations", "reconstruction", "network"),
    "synergy": ("synergy",),
}


def _override_key(arg: str) -> str | None:
    """The key an override sets (``+a.b=1`` -> ``a.b``), or None for a flag or a bare word."""
    if arg.startswith("-") or "=" not in arg:
        return None
    return arg.split("=", 1)[0].lstrip("+~")


def _task_of(overrides: dict[str, str]) -> str:
    """The task a command line selects: ``task=``, else its experiment's ``override /task``, else speech."""
    if "task" in overrides:
        return overrides["task"]
    experiment = overrides.get("experiment")
    if experiment:
        path = CONFIG_DIR / "experiment" / f"{experiment}.yaml"
        if path.is_file():
            for entry in OmegaConf.load(path).get("defaults") or ():
                if isinstance(entry, DictConfig) and "override /task" in entry:
                    return str(entry["override /task"])
    return "speech"


def _unknown_option(key: str, value: str) -> str | None:
    """One line for a config-group choice that has no file (``experiment=tabel1``), instead of Hydra's
    "Could not find" with its search-path dump; None when every value of ``key`` (a sweep's ``a,b``) exists."""
    folder = CONFIG_DIR / key
    if "." in key or "/" in key or not folder.is_dir() or any(c in value for c in "()[]{}$*\"'"):
        return None
    options = sorted(p.stem for p in folder.glob("*.yaml"))
    for choice in (v.strip() for v in value.split(",")):
        if choice and choice != "null" and choice not in options:
            return (
                f"{key}={choice}: no such {key}; choose one of {', '.join(options) or '(none)'} (conf/{key}/)"
            )
    return None


def check_command_line(args: list[str]) -> str | None:
    """What is wrong with a command line's overrides before Hydra composes them, or None.

    Catches what Hydra would only report with its config search path (a choice that has no file:
    ``experiment=tabel1``), as "no match in the defaults list" or as "not in struct": the spellings of
    earlier versions (``model=``, ``separator=``), a component chosen outside its method (``activations=dnn``),
    and a key of the other task (``noise=babble`` in a synergy job).
    """
    overrides = {}
    for arg in args:
        key = _override_key(arg)
        if key is not None:
            overrides[key] = arg.split("=", 1)[1]
    for key, value in overrides.items():
        problem = _unknown_option(key, value)
        if problem:
            return problem
    task = _task_of(overrides)
    for key in ("hydra.run.dir", "hydra.sweep.dir"):
        if key in overrides and Path(overrides[key]).exists() and not Path(overrides[key]).is_dir():
            return (
                f"{key}={overrides[key]} is a file; a job's output folder must be a folder (or not exist yet)"
            )
    for key in overrides:
        group = key.split(".", 1)[0]
        if group in RENAMED_GROUPS:
            return f"{key}= is no longer a key: use {RENAMED_GROUPS[group]}"
        if key in COMPONENT_GROUPS:
            return (
                f"{key}= cannot be chosen on its own: the {key} is part of the method (conf/method/); choose "
                f"method=<name> (nmf, dnmf, drnn, vae_nmf, nmf_dnn, vae_nmf_mu) and change its settings with "
                f"{key}.<key>=..."
            )
        for other, keys in TASK_KEYS.items():
            if other != task and group in keys:
                return f"{key}= is a key of task={other}; this job runs task={task}, which has no {group!r}"
    return None


def main() -> None:
    """Console script ``vaenmf-train``."""
    os.environ.setdefault("VAENMF_ROOT", str(REPO_ROOT))
    if not (CONFIG_DIR / "train.yaml").is_file():
        print(
            f"vaenmf-train: error: no config tree at {CONFIG_DIR} (expected conf/train.yaml in the repository; "
            "set VAENMF_CONFIG_DIR to point elsewhere)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    problem = check_command_line(sys.argv[1:])
    if problem:
        print(f"vaenmf-train: error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    _hydra_main()


if __name__ == "__main__":
    main()
