"""``vaenmf-train``: the Hydra entry point. One call runs one job (or, with ``-m``, a sweep of jobs).

Examples::

    vaenmf-train experiment=smoke
    vaenmf-train model=nmf noise=babble seed=1 logger=csv
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

from vaenmf.cluster import check_launch_settings
from vaenmf.errors import VaenmfError
from vaenmf.tasks.runtime import REPO_ROOT, config_hash, git_commit, write_json_atomic

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


def run_job(cfg: DictConfig, output_dir: Path | None = None) -> dict[str, Any]:
    """Run the configured task and write ``metrics.json`` into the job directory (also when the job fails).

    Args:
        cfg: The composed config.
        output_dir: The job directory; default Hydra's ``runtime.output_dir``.

    Returns:
        The metrics written.
    """
    import pytorch_lightning as pl
    from pytorch_lightning.utilities import rank_zero_only

    from vaenmf.tasks import get_task
    from vaenmf.tasks.runtime import JobContext, resolved_container

    check_launch_settings(cfg)  # inconsistent DDP/SLURM settings: one message, before any work
    output_dir = Path(output_dir or HydraConfig.get().runtime.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    header = {
        "task": str(cfg.task),
        "seed": int(cfg.seed),
        "git_commit": git_commit(),
        "config_hash": config_hash(cfg),
        "output_dir": str(output_dir),
    }
    # Under SLURM + DDP every rank runs this job; only global rank 0 writes files (DESIGN.md, PITFALLS.md).
    is_rank_zero = rank_zero_only.rank == 0
    if is_rank_zero:
        OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)
    job = JobContext(cfg, output_dir)
    started = time.time()
    metrics: dict[str, Any] = {}
    try:
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
        if cfg.get("torch_threads"):
            import torch

            torch.set_num_threads(int(cfg.torch_threads))
        task = get_task(str(cfg.task))
        metrics = {**header, **task(cfg, job), "status": "ok"}
        return metrics
    except BaseException as err:
        metrics = {**header, "method": str(cfg.get("model", {}).get("name", "unknown"))}
        if str(cfg.task) == "speech":  # what identifies a speech job in the tables
            metrics["separator"] = str(cfg.get("separator", {}).get("name", "unknown"))
            metrics["noise"] = str(cfg.get("noise", "unknown"))
        metrics.update(status="failed", error=f"{type(err).__name__}: {err}")
        if not isinstance(err, VaenmfError):
            metrics["traceback"] = traceback.format_exc()
        raise
    finally:
        metrics["wall_time_s"] = time.time() - started
        metrics["config"] = resolved_container(cfg, ("hydra",))
        try:
            if is_rank_zero:
                write_json_atomic(output_dir / "metrics.json", metrics)
        finally:
            job.finish()
            _finish_wandb()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        metrics = run_job(cfg)
    except VaenmfError as err:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweep goes on with the other jobs and reports this one at the end
        # One message, on stderr (metrics.json in the job directory records it too).
        print(f"vaenmf-train: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    log.info("metrics.json written to %s", metrics.get("output_dir"))


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
    _hydra_main()


if __name__ == "__main__":
    main()
