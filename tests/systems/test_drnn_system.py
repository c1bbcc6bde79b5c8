"""DRNNSystem: the Lightning wrapper trains the DRNN on a small separable problem."""

from __future__ import annotations

import functools

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from vaenmf.models.drnn import discriminative_loss
from vaenmf.systems.drnn import DRNNSystem

F_BINS = 16


def _separable_problem(n_seq=16, T=24, seed=0):
    """Speech lives in the lower half of the bins, noise in the upper half, both with random gains per frame.

    The mixture's magnitude here is the sum of the parts (disjoint supports), so the ideal mask is 1 on the
    lower bins and 0 on the upper ones and the ideal loss is ``-gamma/2 (||s||^2 + ||n||^2)``.
    """
    g = torch.Generator().manual_seed(seed)
    speech = torch.zeros(n_seq, T, F_BINS)
    noise = torch.zeros(n_seq, T, F_BINS)
    speech[..., : F_BINS // 2] = (
        torch.rand(n_seq, T, 1, generator=g) * torch.rand(F_BINS // 2, generator=g) * 4
    )
    noise[..., F_BINS // 2 :] = (
        torch.rand(n_seq, T, 1, generator=g) * torch.rand(F_BINS // 2, generator=g) * 4
    )
    return speech + noise, speech, noise


def _mean_loss(system: DRNNSystem, data) -> float:
    mixture, speech, noise = data
    system.eval()
    with torch.no_grad():
        y1, y2 = system(mixture)
        value = discriminative_loss(y1, y2, speech, noise, gamma=0.0, reduction="mean")
    return float(value)


def test_training_decreases_the_loss_on_a_separable_problem(tmp_path):
    pl.seed_everything(0, workers=True)
    data = _separable_problem()
    system = DRNNSystem(
        F_BINS,
        gamma=0.05,
        hidden=24,
        n_layers=2,
        recurrent_layer=1,
        optimizer=functools.partial(torch.optim.Adam, lr=1e-2),
        scheduler=functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=12),
    )
    before = _mean_loss(system, data)
    system.train()
    trainer = pl.Trainer(
        max_epochs=12,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    loader = DataLoader(
        TensorDataset(*data), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    trainer.fit(
        system, train_dataloaders=loader, val_dataloaders=DataLoader(TensorDataset(*data), batch_size=16)
    )
    after = _mean_loss(system, data)
    # Measured: 0.64 before, 0.0005 after 12 epochs (the gamma-free separation error; > 1000x smaller).
    assert after < 0.1 * before, (before, after)
    # The speech mask learned to keep the lower bins and drop the upper ones.
    mixture = data[0]
    with torch.no_grad():
        y1, _ = system(mixture)
    mask = (y1 / mixture.clamp_min(1e-6)).mean(dim=(0, 1))
    assert mask[: F_BINS // 2].min() > 0.8 and mask[F_BINS // 2 :].max() < 0.2, mask
    # The scheduler was stepped once per epoch: the cosine schedule has annealed the rate to 0.
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-9)
    # Both losses were logged with the stage prefix.
    assert {"drnn/loss_epoch", "drnn/val_loss"} <= set(trainer.callback_metrics)
