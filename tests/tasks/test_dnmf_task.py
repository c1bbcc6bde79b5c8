"""The DNMF stage of the speech task: config, training on mixtures, resume, clear errors, and the CLI end to end."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from vaenmf.data.features import magnitude
from vaenmf.errors import ConfigError, DataError
from vaenmf.nmf import fit_activations, nmf, normalize_dictionary
from vaenmf.nmf.dnmf import dnmf_objective
from vaenmf.tasks.dnmf import dnmf_training_matrices, train_reconstruction_bases
from vaenmf.tasks.runtime import JobContext
from vaenmf.train import CONFIG_DIR


def _compose(tmp_path: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(
            "train",
            overrides=[
                "method=dnmf",
                "logger=none",
                "trainer.enable_progress_bar=false",
                f"paths.output_root={tmp_path}",
                *overrides,
            ],
        )


@dataclass
class _Mix:
    speech: torch.Tensor
    noise: torch.Tensor
    mixture: torch.Tensor


def _signals(n: int, length: int = 6000, seed: int = 0) -> list[_Mix]:
    """Harmonic "speech" with a moving pitch plus low-passed noise, at about 0 dB."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 16000
    out = []
    for i in range(n):
        f0 = 150 + 40 * i + 30 * torch.sin(2 * torch.pi * 2 * t)
        phase = 2 * torch.pi * torch.cumsum(f0, 0) / 16000
        speech = sum(torch.sin(k * phase) / k for k in range(1, 6)) * 0.1 * torch.hann_window(length)
        noise = torch.randn(length, generator=g)
        noise = 0.1 * torch.nn.functional.conv1d(
            noise.view(1, 1, -1), torch.ones(1, 1, 5) / 5, padding="same"
        ).view(-1)
        out.append(_Mix(speech, noise, speech + noise))
    return out


class _DataModule:
    def __init__(self, mixtures: list[_Mix]) -> None:
        self.mixtures = mixtures

    def training_mixtures(self) -> list[_Mix]:
        return self.mixtures


def _bases(mixtures: list[_Mix], rank: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    S = torch.cat([magnitude(m.speech) for m in mixtures], dim=1)
    N = torch.cat([magnitude(m.noise) for m in mixtures], dim=1)
    W_s, _ = normalize_dictionary(nmf(S, rank, max_iter=40, seed=0).W)
    W_n, _ = normalize_dictionary(nmf(N, rank, max_iter=40, seed=1).W)
    return W_s, W_n


def test_activation_settings_follow_the_mu_activations(tmp_path):
    cfg = _compose(tmp_path, "activations.mu_iterations=37", "activations.l1=0.5", "activations.beta=2")
    r = cfg.reconstruction
    assert (r.activation_mu_iterations, r.activation_l1, r.activation_beta) == (37, 0.5, 2.0)
    assert cfg.dictionary.system._target_ == "vaenmf.systems.NMFSystem"
    assert cfg.reconstruction.system._target_ == "vaenmf.systems.dnmf.DNMFSystem"


def test_training_matrices_are_the_test_time_activations():
    mixtures = _signals(2)
    W_s, W_n = _bases(mixtures, rank=3)
    M, S, H = dnmf_training_matrices(mixtures, W_s, W_n, n_iter=20)
    first = magnitude(mixtures[0].mixture)
    assert M.shape == S.shape == (257, 2 * first.shape[1]) and H.shape == (6, M.shape[1])
    # Each mixture's activations on their own, as MUSeparator computes them at test time.
    expected = fit_activations(first, torch.cat([W_s, W_n], dim=1), n_iter=20)
    torch.testing.assert_close(H[:, : first.shape[1]], expected)
    torch.testing.assert_close(S[:, : first.shape[1]], magnitude(mixtures[0].speech))


def test_trained_bases_beat_the_analysis_bases_and_resume(tmp_path):
    mixtures = _signals(3)
    W_s, W_n = _bases(mixtures)
    datamodule = _DataModule(mixtures)
    overrides = ["reconstruction.checkpoint_every=1", "activations.mu_iterations=30"]

    straight_cfg = _compose(tmp_path, *overrides, "reconstruction.mu_iterations=20")
    Wb_s, Wb_n = train_reconstruction_bases(
        straight_cfg.reconstruction, JobContext(straight_cfg, tmp_path / "straight"), W_s, W_n, datamodule, 0
    )
    assert Wb_s.shape == W_s.shape and Wb_n.shape == W_n.shape
    assert Wb_s.dtype == torch.float32 and Wb_s.device.type == "cpu"
    assert (Wb_s >= 0).all() and (Wb_n >= 0).all()
    M, S, H = dnmf_training_matrices(mixtures, W_s, W_n, n_iter=30)
    power = straight_cfg.reconstruction.mask_power
    assert power == straight_cfg.activations.mask_power
    before = dnmf_objective(S, M, W_s, W_n, H[:6], H[6:], power=power).item()
    after = dnmf_objective(S, M, Wb_s, Wb_n, H[:6], H[6:], power=power).item()
    # Measured: 20 updates take the objective (mask power 2) 17% below its value with Wb = W on these mixtures.
    assert after < 0.95 * before
    assert (tmp_path / "straight" / "checkpoints" / "dnmf_recon" / "last.ckpt").is_file()

    # A job killed after 8 updates and run again continues from its last.ckpt to the same bases.
    job_dir = tmp_path / "killed"
    short = _compose(tmp_path, *overrides, "reconstruction.mu_iterations=8")
    partial = train_reconstruction_bases(
        short.reconstruction, JobContext(short, job_dir), W_s, W_n, datamodule, 0
    )
    assert not torch.allclose(partial[0], Wb_s)
    resumed = train_reconstruction_bases(
        straight_cfg.reconstruction, JobContext(straight_cfg, job_dir), W_s, W_n, datamodule, 0
    )
    torch.testing.assert_close(resumed[0], Wb_s)
    torch.testing.assert_close(resumed[1], Wb_n)


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_bases_are_trained_for_the_mask_power_the_separator_applies(tmp_path, power):
    mixtures = _signals(3)
    W_s, W_n = _bases(mixtures)
    datamodule = _DataModule(mixtures)
    # Under KL, where the two powers' optima are far apart on these signals (under the default Euclidean
    # divergence the bases of one power are 0.80-0.95 times the other's objective: too close to tell a trainer
    # that ignores the power from one that does not).
    overrides = [
        "activations.mu_iterations=30",
        "reconstruction.mu_iterations=20",
        "reconstruction.system.beta=1",
    ]
    cfg = _compose(tmp_path, *overrides, f"activations.mask_power={power}")
    # One key: the reconstruction node follows the activations' mask power.
    assert cfg.reconstruction.mask_power == power
    trained = {}
    for p in (1.0, 2.0):
        other = _compose(tmp_path, *overrides, f"activations.mask_power={p}")
        trained[p] = train_reconstruction_bases(
            other.reconstruction, JobContext(other, tmp_path / f"p{p}"), W_s, W_n, datamodule, 0
        )
    M, S, H = dnmf_training_matrices(mixtures, W_s, W_n, n_iter=30)

    def objective(bases):
        beta = float(cfg.reconstruction.system.beta)  # the divergence the bases were trained with
        return dnmf_objective(S, M, *bases, H[:6], H[6:], beta=beta, power=power).item()

    # The bases trained for the deployed mask are better under that mask than those trained for the other one
    # and than the analysis bases (a trainer that ignored the power could not pass both ways round). Measured:
    # 0.67 (p = 1) and 0.66 (p = 2) times the other power's bases; 0.83 and 0.46 times the analysis bases.
    assert objective(trained[power]) < 0.8 * objective(trained[3.0 - power])
    assert objective(trained[power]) < 0.9 * objective((W_s, W_n))


def test_disagreeing_mask_powers_are_refused(tmp_path):
    mixtures = _signals(1)
    W_s, W_n = _bases(mixtures, rank=2)
    bad = _compose(tmp_path, "reconstruction.mask_power=1.0")
    assert bad.activations.mask_power == 2.0
    with pytest.raises(
        ConfigError, match="trained for mask power reconstruction.mask_power=1 but applied with"
    ):
        train_reconstruction_bases(
            bad.reconstruction, JobContext(bad, tmp_path / "job"), W_s, W_n, _DataModule(mixtures), 0
        )
    below = _compose(tmp_path, "activations.mask_power=0.5")
    with pytest.raises(ConfigError, match="mask_power"):
        train_reconstruction_bases(
            below.reconstruction, JobContext(below, tmp_path / "job"), W_s, W_n, _DataModule(mixtures), 0
        )


def test_bad_configuration_and_data_give_one_clear_error(tmp_path):
    mixtures = _signals(1)
    W_s, W_n = _bases(mixtures, rank=2)
    dm = _DataModule(mixtures)
    cfg = _compose(tmp_path)
    job = JobContext(cfg, tmp_path / "job")

    for override, message in (
        ("reconstruction.activation_mu_iterations=0", "activation_mu_iterations must be an integer >= 1"),
        ("reconstruction.mu_iterations=-1", "mu_iterations must be an integer >= 0"),
        ("reconstruction.activation_l1=-1", "activation_l1 must be a finite number >= 0"),
        ("reconstruction.activation_beta=kl", "beta must be a number"),
        ("reconstruction.system.beta=kl", "beta must be a number"),
    ):
        bad = _compose(tmp_path, override)
        with pytest.raises(ConfigError, match=message):
            train_reconstruction_bases(bad.reconstruction, job, W_s, W_n, dm, 0)
    extra = _compose(tmp_path)
    OmegaConf.set_struct(extra, False)
    extra.reconstruction.n_itr = 3
    with pytest.raises(ConfigError, match=r"unknown \['n_itr'\]"):
        train_reconstruction_bases(extra.reconstruction, job, W_s, W_n, dm, 0)
    with pytest.raises(DataError, match="training mixtures"):
        train_reconstruction_bases(cfg.reconstruction, job, W_s, W_n, _DataModule([]), 0)
    with pytest.raises(DataError, match="noise dictionary contains 1 NaN"):
        W_bad = W_n.clone()
        W_bad[0, 0] = float("nan")
        train_reconstruction_bases(cfg.reconstruction, job, W_s, W_bad, dm, 0)
    # mu_iterations = 0: the reconstruction bases are the analysis bases (the NMF mask), no training stage.
    zero = _compose(tmp_path, "reconstruction.mu_iterations=0")
    Wb_s, Wb_n = train_reconstruction_bases(zero.reconstruction, job, W_s, W_n, dm, 0)
    torch.testing.assert_close(Wb_s, W_s)
    torch.testing.assert_close(Wb_n, W_n)


def test_dnmf_column_end_to_end(tmp_path, train_cli, nmf_reference):
    out = tmp_path / "job"
    result = train_cli(
        [
            "experiment=smoke",
            "method=dnmf",
            f"paths.output_root={tmp_path}",
            f"hydra.run.dir={out}",
            "cache_dictionaries=false",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["method"], metrics["paper_column"], metrics["status"]) == ("dnmf", "DNMF", "ok")
    # DNMF's reconstruction bases start from the NMF bases and are trained discriminatively, for the mask power
    # they are applied with (p = 2). Measured on these 3 test utterances (4 training utterances, 30 updates):
    # 3.07 / 7.30 dB at -5 / 0 dB against the numpy NMF reference's 3.75 / 8.00 dB and the input's -4.85 / 0.06 dB
    # (bases trained for p = 1: 3.16 / 7.46 dB with the p = 1 mask, 3.84 / 7.66 dB applied with p = 2). That DNMF
    # trained on a few utterances may sit below plain NMF is measured on held-out speakers too (README, "Choices
    # measured": -1.1 dB on the demo with one training speaker, +1.6 dB on the TIMIT sample with two), so the check
    # is that it stays within 1 dB of the reference at both SNRs and far above the input.
    reference = nmf_reference(metrics)
    for snr in ("-5", "0"):
        assert metrics["summary"][snr]["sdr"] > reference[snr] - 1.0, (snr, reference)
        assert metrics["summary"][snr]["sdr"] > metrics["summary"][snr]["sdr_input"] + 6.0
    assert (out / "checkpoints" / "dnmf_recon" / "last.ckpt").is_file()
    with open(out / "csv" / "dnmf_recon" / "metrics.csv") as fh:
        objective = [
            float(r["dnmf_recon/objective"]) for r in csv.DictReader(fh) if r["dnmf_recon/objective"]
        ]
    assert len(objective) >= 2 and objective[-1] < objective[0]
