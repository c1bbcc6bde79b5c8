"""A DataModule over one nonnegative data matrix, for the dictionary-learning systems."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset


class _WholeMatrix(Dataset):
    """One item: the whole ``(m, n)`` matrix (full-batch methods such as multiplicative-update NMF)."""

    def __init__(self, X: torch.Tensor) -> None:
        self.X = X

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.X


class _Frames(Dataset):
    """Items are the columns (frames) of ``X``, so a batch is ``(batch, m)``."""

    def __init__(self, X: torch.Tensor) -> None:
        self.frames = X.T.contiguous()

    def __len__(self) -> int:
        return self.frames.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.frames[index]


class MatrixDataModule(pl.LightningDataModule):
    """Serves a data matrix ``X`` either whole or as shuffled mini-batches of frames.

    Args:
        X: Nonnegative ``(m, n)`` data, one column per frame.
        batch_size: ``None`` yields the whole ``(m, n)`` matrix as the single batch of every epoch; an integer
            yields frame batches ``(batch, m)``.
        shuffle: Shuffle frames every epoch (mini-batch mode only).
        seed: Seed of the shuffling order.
        num_workers: DataLoader workers (the data are in memory, so 0 is usually fastest).

    Shape:
        X: ``(m, n)``. Batches: ``(m, n)`` when ``batch_size is None``, else ``(batch, m)``.
    """

    def __init__(
        self,
        X: torch.Tensor,
        batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.X = X
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_workers = num_workers

    def train_dataloader(self) -> DataLoader:
        if self.batch_size is None:
            return DataLoader(_WholeMatrix(self.X), batch_size=None, num_workers=self.num_workers)
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            _Frames(self.X),
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            generator=generator,
            num_workers=self.num_workers,
            drop_last=False,
        )
