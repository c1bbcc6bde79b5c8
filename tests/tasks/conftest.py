"""Running `vaenmf-train` as a user does, in a subprocess, for the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

TRAIN = [sys.executable, "-m", "vaenmf.train"]


def run_train(
    args: list[str], cwd: Path, env_extra: dict[str, str] | None = None, timeout: int = 240
) -> subprocess.CompletedProcess:
    """``vaenmf-train ARGS`` in ``cwd`` with W&B off (``env_extra`` may change that), on one torch thread
    (small networks: as fast, and robust on a busy machine) unless the arguments set ``torch_threads``."""
    env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_ERROR_REPORTING": "false", "HYDRA_FULL_ERROR": "0"}
    env.update(env_extra or {})
    if not any(a.startswith("torch_threads=") for a in args):
        args = [*args, "torch_threads=1"]
    return subprocess.run(TRAIN + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def train_cli() -> Callable[..., subprocess.CompletedProcess]:
    return run_train


# ----------------------------------------------------------------------------------------------------------------
# An independent reference for the end-to-end SDR checks: plain KL-NMF speech enhancement written here in numpy.

#: What ``experiment=smoke method=nmf`` runs: rank-40 dictionaries, 30 KL multiplicative updates each
#: (``max_stage_epochs: 30`` caps ``dictionary.mu_iterations``), 100 KL updates of the activations with both
#: dictionaries fixed, then the mask ``S^2 / (S^2 + N^2)``. The NMF smoke test checks the job ran these settings.
REFERENCE_NMF = {"rank": 40, "dictionary_updates": 30, "activation_updates": 100, "mask_power": 2.0}
_EPS = 1e-12


def _kl_nmf(V, rank: int, n_iter: int, rng):
    """Lee-Seung KL multiplicative updates from a seeded start; columns of W scaled to unit l2 norm.

    The start is drawn as scikit-learn's ``init="random"`` draws it (``sqrt(mean(V) / r) * |N(0, 1)|``), the
    distribution the package starts from too: with the smoke test's 30 updates the fit is far from converged, and
    a uniform start (``U(0.1, 1.1)`` at the same scale) gave 0.25-0.8 dB higher SDR than either on three of four
    seeds, a difference of starting points, not of the updates.
    """
    import numpy as np

    scale = np.sqrt(V.mean() / rank)
    W = np.maximum(np.abs(rng.standard_normal((V.shape[0], rank))) * scale, 1e-12)
    H = np.maximum(np.abs(rng.standard_normal((rank, V.shape[1]))) * scale, 1e-12)
    for _ in range(n_iter):
        H *= (W.T @ (V / (W @ H + _EPS))) / (W.sum(0)[:, None] + _EPS)
        W *= ((V / (W @ H + _EPS)) @ H.T) / (H.sum(1)[None, :] + _EPS)
    return W / np.linalg.norm(W, axis=0)


def _kl_activations(Y, W, n_iter: int):
    import numpy as np

    H = np.full((W.shape[1], Y.shape[1]), Y.mean() / W.sum(0).mean())
    for _ in range(n_iter):
        H *= (W.T @ (Y / (W @ H + _EPS))) / (W.sum(0)[:, None] + _EPS)
    return H


def nmf_reference_sdr(metrics: dict, inits: int = 2, snrs: tuple[int, ...] | None = None) -> dict[str, float]:
    """Mean SDR per SNR of plain KL-NMF enhancement (:data:`REFERENCE_NMF`) of a speech job's own test mixtures.

    The job's recorded data config rebuilds its data (dictionary frames and test mixtures); the dictionaries,
    activations and mask are computed here with numpy, independently of ``vaenmf.nmf``, and averaged over
    ``inits`` random starts (seeds 0, 1, ...: on the smoke data one start moves the mean SDR at -5 dB by about
    0.2 dB: 3.63, 3.87, 4.08, 3.92 for seeds 0-3). Only the STFT, the resynthesis and BSS Eval are the package's
    (tested against mir_eval elsewhere). ``snrs``: score only these SNRs (default every test SNR).
    """
    import numpy  # noqa: F401  (loaded first: threadpoolctl limits the BLAS libraries already loaded)
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small matrices: one BLAS thread is several times faster on a busy machine
        return _nmf_reference_sdr(metrics, inits, snrs)


def _nmf_reference_sdr(metrics: dict, inits: int, snrs: tuple[int, ...] | None) -> dict[str, float]:
    import numpy as np
    import torch

    from vaenmf.data.features import magnitude_phase, resynthesise
    from vaenmf.data.speech import SpeechDataModule
    from vaenmf.metrics.speech import bss_eval_speech

    data = {k: v for k, v in metrics["config"]["data"].items() if k != "_target_"}
    dm = SpeechDataModule(**data)
    dm.evaluate_on("test")  # as the job did (its test mixtures are rebuilt)
    dm.setup("fit")
    V_speech = dm.speech_dictionary_frames().double().numpy()
    V_noise = dm.noise_dictionary_frames().double().numpy()
    spectra = {
        snr: [(m, *magnitude_phase(m.mixture)) for m in mixtures]
        for snr, mixtures in dm.test_mixtures().items()
        if snrs is None or snr in snrs
    }
    r, p = REFERENCE_NMF["rank"], REFERENCE_NMF["mask_power"]
    sdr: dict[str, list[float]] = {}
    for seed in range(inits):
        rng = np.random.default_rng(seed)
        Ws = _kl_nmf(V_speech, r, REFERENCE_NMF["dictionary_updates"], rng)
        Wn = _kl_nmf(V_noise, r, REFERENCE_NMF["dictionary_updates"], rng)
        W = np.concatenate([Ws, Wn], axis=1)
        for snr, items in spectra.items():
            for mixture, mag, phase in items:
                Y = mag.double().numpy()
                H = _kl_activations(Y, W, REFERENCE_NMF["activation_updates"])
                S, N = (Ws @ H[:r]) ** p, (Wn @ H[r:]) ** p
                estimate = resynthesise(
                    torch.from_numpy(S / (S + N + _EPS) * Y).to(mag.dtype), phase, mixture.mixture.shape[-1]
                )
                score = bss_eval_speech(mixture.speech, mixture.noise, estimate, mixture.mixture)["sdr"]
                sdr.setdefault(str(int(snr)), []).append(score)
    return {snr: float(np.mean(values)) for snr, values in sdr.items()}


@pytest.fixture
def nmf_reference() -> Callable[..., dict[str, float]]:
    """:func:`nmf_reference_sdr`: the SDR an independent numpy KL-NMF reaches on a job's own test mixtures."""
    return nmf_reference_sdr


@pytest.fixture
def reference_nmf_settings() -> dict[str, float]:
    """:data:`REFERENCE_NMF`, the settings the numpy reference runs (for tests to check the job ran the same)."""
    return dict(REFERENCE_NMF)
