"""DataModules over in-memory tensors: one data matrix (dictionary learning) or paired training tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset


class WholeBatch(Dataset):
    """One item, the whole data (a matrix, or a dict of them): full-batch methods such as multiplicative
    updates take one step per epoch on all of it. Load with ``DataLoader(WholeBatch(x), batch_size=None)``."""

    def __init__(self, item: Any) -> None:
        self.item = item

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> Any:
        return self.item


class _Frames(Dataset):
    """Items are the columns (frames) of ``X``, so a batch is ``(batch, m)``."""

    def __init__(self, X: torch.Tensor) -> None:
        self.frames = X.T.contiguous()

    def __len__(self) -> int:
        return self.frames.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.frames[index]


class _ShuffleState:
    """The shuffling generator of a data module, created with its first loader and checkpointed with the stage.

    The generator is made lazily (a data module holding a ``torch.Generator`` cannot be sent to ``ddp_spawn``
    workers) and persists across epochs; its state goes into every checkpoint (``state_dict``) and is restored on
    resumption, so a resumed stage draws the same batches as an uninterrupted one.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.generator: torch.Generator | None = None
        self.pending: torch.Tensor | None = None

    def make(self) -> torch.Generator:
        self.generator = torch.Generator().manual_seed(self.seed)
        if self.pending is not None:
            self.generator.set_state(self.pending)
            self.pending = None
        return self.generator

    def state_dict(self) -> dict[str, Any]:
        return {} if self.generator is None else {"shuffle_rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pending = state.get("shuffle_rng")


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
        self._shuffle = _ShuffleState(seed)

    def state_dict(self) -> dict[str, Any]:
        return self._shuffle.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._shuffle.load_state_dict(state_dict)

    def train_dataloader(self) -> DataLoader:
        if self.batch_size is None:
            return DataLoader(WholeBatch(self.X), batch_size=None, num_workers=self.num_workers)
        return DataLoader(
            _Frames(self.X),
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            generator=self._shuffle.make(),
            num_workers=self.num_workers,
            drop_last=False,
        )


class TensorDataModule(pl.LightningDataModule):
    """Shuffled mini-batches of paired tensors (inputs, targets, ...), with an optional validation set.

    The loaders, and the shuffling generator, are built in :meth:`train_dataloader` rather than passed in: a
    DataLoader holding a ``torch.Generator`` cannot be sent to ``ddp_spawn`` worker processes (torch fails to
    rebuild the generator's shared state there; measured with ``trainer=ddp_sim``).

    Args:
        train_set: Tensors with the same first dimension (the items).
        val_set: Validation tensors, or None.
        batch_size: Items per training batch.
        seed: Seed of the shuffling order.
        drop_last: Drop a last incomplete training batch (BatchNorm needs more than one item per batch).
        val_batch_size: Items per validation batch.

    Shape:
        Every tensor of a set: ``(N, ...)`` with the same ``N``.
    """

    def __init__(
        self,
        train_set: Sequence[torch.Tensor],
        val_set: Sequence[torch.Tensor] | None,
        batch_size: int,
        seed: int = 0,
        drop_last: bool = False,
        val_batch_size: int = 256,
    ) -> None:
        super().__init__()
        self.train_set, self.val_set = tuple(train_set), None if val_set is None else tuple(val_set)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.drop_last, self.val_batch_size = drop_last, int(val_batch_size)
        self._shuffle = _ShuffleState(seed)

    def state_dict(self) -> dict[str, Any]:
        return self._shuffle.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._shuffle.load_state_dict(state_dict)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            TensorDataset(*self.train_set),
            batch_size=self.batch_size,
            shuffle=True,
            generator=self._shuffle.make(),
            drop_last=self.drop_last,
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(TensorDataset(*self.val_set), batch_size=self.val_batch_size)
