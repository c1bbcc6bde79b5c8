"""Fake sweep directories with hand-written metrics.json files (known numbers)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SNRS = ("-5", "0", "5", "10")
#: What the methods of conf/method/ record in metrics.json (test data, written by hand).
PAPER_COLUMN = {"nmf": "NMF", "dnmf": "DNMF", "drnn": "DNN", "vae_nmf": "VAE-NMF"}
COMPONENTS = {
    "nmf": {"dictionary": "nmf", "activations": "mu"},
    "dnmf": {"dictionary": "nmf", "reconstruction": "dnmf", "activations": "mu"},
    "drnn": {"network": "drnn"},
    "vae_nmf": {"dictionary": "vae_nmf", "activations": "dnn"},
    "nmf_dnn": {"dictionary": "nmf", "activations": "dnn"},
    "vae_nmf_mu": {"dictionary": "vae_nmf", "activations": "mu"},
}


def snr_summary(base: float, pesq: float = 2.0, input_sdr: float = -1.0) -> dict[str, dict[str, float]]:
    """Summary whose values at SNR index i are base + i (sdr), base + 10 + i (sir), base + 20 + i (sar),
    pesq + 0.1 i (pesq_nb) and input_sdr + i (sdr_input)."""
    out = {}
    for i, snr in enumerate(SNRS):
        out[snr] = {
            "n_utterances": 4,
            "sdr": base + i,
            "sir": base + 10 + i,
            "sar": base + 20 + i,
            "pesq_nb": pesq + 0.1 * i,
            "pesq_wb": pesq - 0.5,
            "stoi": 0.8,
            "sdr_input": input_sdr + i,
            "pesq_nb_input": 1.5 + 0.1 * i,
        }
    return out


#: Per-utterance offsets of :func:`utterance_rows` (mean 0, sample variance 5/3).
OFFSETS = (-1.5, -0.5, 0.5, 1.5)


def utterance_rows(
    summary: dict[str, dict[str, float]], noise: str, spread: float = 1.0
) -> list[dict[str, Any]]:
    """Per-utterance rows whose means are ``summary``: utterance ``u{k}`` scores the summary value plus
    ``spread * OFFSETS[k]`` for every metric, with each noise kind of the job (pooled: factory and babble).

    Rows are named like the task names its mixtures (``u0_factory_-5dB``)."""
    kinds = ("factory", "babble") if noise == "pooled" else (noise,)
    rows = []
    for snr, values in summary.items():
        for kind in kinds:
            for k, off in enumerate(OFFSETS):
                row: dict[str, Any] = {
                    "utterance": f"u{k}_{kind}_{float(snr):+g}dB",
                    "snr": float(snr),
                    "noise": kind,
                }
                for key, value in values.items():
                    if key != "n_utterances":
                        row[key] = value + spread * off
                rows.append(row)
    return rows


def write_job(
    root: Path,
    name: str,
    method: str,
    noise: str,
    seed: int,
    summary: dict[str, Any] | None = None,
    status: str = "ok",
    error: str | None = None,
    corpus: str = "demo",
    commit: str = "abc1234",
    overrides: bool = True,
    config: dict[str, Any] | None = None,
    rows: list[dict[str, Any]] | None = None,
    spread: float = 1.0,
    eval_split: str | None = None,
) -> Path:
    """A job folder with ``.hydra/`` and a ``metrics.json``; ``rows`` None: :func:`utterance_rows` of the summary
    with ``spread`` (``[]`` for none); ``eval_split`` None: not recorded (an older file, read as test)."""
    job = root / name
    job.mkdir(parents=True)
    if overrides:
        (job / ".hydra").mkdir()
        (job / ".hydra" / "overrides.yaml").write_text(f"- method={method}\n- noise={noise}\n- seed={seed}\n")
        # What Hydra saves when the job starts (before any metrics.json).
        column = PAPER_COLUMN.get(method)
        (job / ".hydra" / "config.yaml").write_text(
            f"task: speech\nnoise: {noise}\nseed: {seed}\nmethod:\n  name: {method}\n"
            f"  paper_column: {column if column else 'null'}\n"
        )
    data: dict[str, Any] = {
        "schema": 2,
        "task": "speech",
        "method": method,
        "paper_column": PAPER_COLUMN.get(method),
        "components": COMPONENTS[method],
        "noise": noise,
        "seed": seed,
        "git_commit": commit,
        "config_hash": f"hash-{name}",
        "corpus": corpus,
        "status": status,
        "config": config or {},
    }
    if eval_split is not None:
        data["eval_split"] = eval_split
    if status == "ok":
        data["summary"] = summary if summary is not None else snr_summary(0.0)
        data["rows"] = utterance_rows(data["summary"], noise, spread) if rows is None else rows
    else:
        data["error"] = error or "RuntimeError: boom"
    (job / "metrics.json").write_text(json.dumps(data))
    return job


@pytest.fixture
def make_job() -> Callable[..., Path]:
    """``make_job(root, name, method, noise, seed, summary=None, status="ok", rows=None, eval_split=None, ...)``."""
    return write_job


@pytest.fixture(name="snr_summary")
def snr_summary_fixture() -> Callable[..., dict[str, dict[str, float]]]:
    """``snr_summary(base, pesq=2.0, input_sdr=-1.0)``: a summary with known values."""
    return snr_summary


@pytest.fixture
def full_sweep(tmp_path: Path) -> Path:
    """All four paper columns, factory + babble, seeds 0 and 1; NMF with known values (see the tests)."""
    root = tmp_path / "sweep"
    k = 0
    bases = {"nmf": 1.0, "dnmf": 2.0, "drnn": 3.0, "vae_nmf": 4.0}
    for method, base in bases.items():
        for seed in (0, 1):
            for noise, off in (("factory", 0.0), ("babble", 2.0)):
                summary = snr_summary(base + off + 4.0 * seed, input_sdr=-1.0 + off)
                write_job(root, str(k), method, noise, seed, summary)
                k += 1
    return root
