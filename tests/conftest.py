"""Shared pytest fixtures.

Tests never touch the network: W&B is disabled for the whole session. Real-corpus excerpts are looked up in
``../shared/data`` next to the repository (or ``$VAENMF_SHARED_DATA``); tests marked ``realdata`` skip when
that folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HYDRA_FULL_ERROR", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest worker per core: the jobs its tests start (vaenmf-train subprocesses) take one
    # BLAS/OpenMP thread each, so that two workers do not run four threads on two cores.
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_name, "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("VAENMF_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _single_torch_thread():
    """Run the in-process tests on one intra-op thread.

    Test tensors are small, so extra threads buy nothing, and on a shared 2-core machine an oversubscribed
    thread pool made training tests 10x slower (60 s instead of 4-6 s, measured). Subprocess tests (the CLI)
    keep torch's default.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def load_script():
    """Import ``scripts/<name>.py`` as module ``name`` (registered in ``sys.modules`` while the session runs, as
    dataclasses need); returns the loader, ``load_script("dry_run")``."""
    import importlib.util
    import sys

    loaded: list[str] = []

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loaded.append(name)
        spec.loader.exec_module(module)
        return module

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of real corpus excerpts; skips the test when it is absent."""
    path = _shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real-data excerpts not found at {path}")
    return path


def random_frame_cosines(frames, W_true, rank: int, draws: int = 500, seed: int = 0):
    """What the data gives a dictionary learner for free: the matched cosine
    (:func:`vaenmf.metrics.matched_cosine`) with ``W_true`` of ``rank`` distinct data frames picked uniformly at
    random, for ``draws`` independent picks (numpy generator seeded with ``seed``).

    Args:
        frames: Data, one frame per column, ``(m, n)`` (numpy array or tensor).
        W_true: The dictionary to recover, ``(m, r)``.
        rank: Frames per pick.

    Returns:
        The ``draws`` cosines (compare a learnt dictionary with their mean and upper quantiles).
    """
    import numpy as np

    from vaenmf.metrics import matched_cosine

    X = frames.detach().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    rng = np.random.default_rng(seed)
    return np.array(
        [matched_cosine(X[:, rng.choice(X.shape[1], rank, replace=False)], W_true) for _ in range(draws)]
    )


@pytest.fixture(scope="session")
def frame_baseline():
    """:func:`random_frame_cosines`: the recovery score of randomly picked data frames."""
    return random_frame_cosines
