"""Fixtures for the model tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_torch_thread() -> Iterator[None]:
    """Run each model test on one intra-op thread, then restore the previous setting.

    The tensors here are small, so extra threads buy nothing, and on a shared 2-core machine an oversubscribed
    intra-op pool made the training tests 10x slower (60 s instead of 4-6 s, measured).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
