"""What every multiplicative-update system (NMF, DNMF) shares under the Trainer: no optimiser, one device, steps."""

from __future__ import annotations

import pytorch_lightning as pl

from vaenmf.errors import ConfigError


def require_single_process(world_size: int, what: str) -> None:
    """Refuse a multi-process trainer for full-batch multiplicative updates, with advice instead of DDP's error.

    Args:
        world_size: The trainer's number of processes.
        what: What runs the updates, for the message (e.g. ``"stage speech_dict"``).

    Raises:
        ConfigError: If ``world_size > 1``.
    """
    if world_size > 1:
        raise ConfigError(
            f"{what} runs full-batch multiplicative updates on one device, but the trainer has world_size "
            f"{world_size}; use trainer=cpu or trainer=gpu for it (multi-GPU DDP helps the trained networks: "
            "method=vae_nmf, method=nmf_dnn, method=drnn)"
        )


class MultiplicativeUpdateSystem(pl.LightningModule):
    """Base of the systems whose training step is a multiplicative update of buffers (no optimiser).

    Manual optimisation without an optimiser leaves Lightning's step counter at 0, and ``ModelCheckpoint`` skips
    every save after the first at an unchanged ``global_step``, so a killed NMF fit would restart from scratch.
    :meth:`count_step` advances the counter once per update step, which also goes into (and resumes from)
    the checkpoint's loop state.
    """

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def configure_optimizers(self) -> None:
        return None

    def on_fit_start(self) -> None:
        require_single_process(self.trainer.world_size, type(self).__name__)

    def count_step(self) -> None:
        """Count one optimisation step (call once per ``training_step``)."""
        progress = self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        progress.increment_ready()
        progress.increment_completed()
