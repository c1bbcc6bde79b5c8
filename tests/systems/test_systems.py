"""Systems under a real Trainer: same numbers as the pure functions, resumable, logging what they promise."""

from __future__ import annotations

import csv

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from vaenmf.data.matrix import MatrixDataModule
from vaenmf.errors import ConfigError, DataError
from vaenmf.nmf import nmf, normalize_dictionary
from vaenmf.systems import EncodingDNNSystem, NMFSystem, VAENMFSystem


def _csv_rows(root) -> list[dict[str, str]]:
    with open(next(root.rglob("metrics.csv"))) as fh:
        return list(csv.DictReader(fh))


def _data(m=30, n=200, r=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(m, r, generator=g) @ torch.rand(r, n, generator=g) + 0.01


def test_nmf_system_matches_pure_function(make_trainer):
    X = _data()
    system = NMFSystem(n_features=30, n_frames=200, rank=4, beta=1.0, seed=3)
    make_trainer(25).fit(system, datamodule=MatrixDataModule(X, batch_size=None))
    reference = nmf(X, 4, beta=1.0, max_iter=25, seed=3)
    torch.testing.assert_close(system.W, reference.W)
    torch.testing.assert_close(system.H, reference.H)
    W_ref, _ = normalize_dictionary(reference.W)
    torch.testing.assert_close(system.dictionary(), W_ref)


def test_nmf_system_resumes_from_last_checkpoint(tmp_path, make_trainer):
    X = _data()
    straight = NMFSystem(n_features=30, n_frames=200, rank=4, seed=1)
    make_trainer(20).fit(straight, datamodule=MatrixDataModule(X))
    first = NMFSystem(n_features=30, n_frames=200, rank=4, seed=1)
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0, every_n_epochs=1)
    make_trainer(8, enable_checkpointing=True, callbacks=[ckpt]).fit(first, datamodule=MatrixDataModule(X))
    resumed = NMFSystem(n_features=30, n_frames=200, rank=4, seed=1)
    make_trainer(20).fit(resumed, datamodule=MatrixDataModule(X), ckpt_path=str(tmp_path / "last.ckpt"))
    torch.testing.assert_close(resumed.W, straight.W)
    torch.testing.assert_close(resumed.H, straight.H)


def test_nmf_system_logs_a_decreasing_divergence(tmp_path, make_trainer):
    X = _data()
    system = NMFSystem(n_features=30, n_frames=200, rank=4, eval_every=1, log_prefix="speech_dict/")
    make_trainer(30, logger=CSVLogger(tmp_path, name="csv")).fit(system, datamodule=MatrixDataModule(X))
    rows = _csv_rows(tmp_path)
    values = [float(r["speech_dict/divergence"]) for r in rows if r.get("speech_dict/divergence")]
    assert len(values) == 30
    assert all(b <= a * (1 + 1e-6) for a, b in zip(values, values[1:], strict=False))
    assert values[-1] < 0.5 * values[0]


def test_nmf_system_rejects_bad_input(make_trainer):
    with pytest.raises(DataError, match="larger than min"):
        NMFSystem(n_features=5, n_frames=3, rank=4)
    system = NMFSystem(n_features=30, n_frames=200, rank=4)
    with pytest.raises(DataError, match="negative"):
        make_trainer(1).fit(system, datamodule=MatrixDataModule(-_data()))
    with pytest.raises(ConfigError, match="whole"):
        make_trainer(1).fit(
            NMFSystem(n_features=30, n_frames=200, rank=4),
            datamodule=MatrixDataModule(_data(), batch_size=16),
        )


def test_vae_nmf_system_trains_and_logs(tmp_path, make_trainer):
    X = _data(m=20, n=512) * 5
    pl.seed_everything(0)
    system = VAENMFSystem(n_features=20, rank=4, likelihood="poisson", log_prefix="d/", seed=0)
    make_trainer(30, logger=CSVLogger(tmp_path, name="csv")).fit(
        system, datamodule=MatrixDataModule(X, batch_size=64)
    )
    rows = [r for r in _csv_rows(tmp_path) if r.get("d/loss_epoch")]
    for key in (
        "d/recon_epoch",
        "d/kl_epoch",
        "d/penalty_epoch",
        "d/elbo_epoch",
        "d/neg_fraction_epoch",
        "d/neg_mass_epoch",
    ):
        assert rows[-1][key] != ""
    losses = [float(r["d/loss_epoch"]) for r in rows]
    assert losses[-1] < 0.7 * losses[0]
    # The logged negative fraction and mass are those of the W the last epoch left, as dictionary_stats says.
    raw = system.model.W.detach()
    stats = system.dictionary_stats()
    assert stats["neg_fraction"] == pytest.approx(float((raw < 0).float().mean()))
    assert stats["neg_mass"] == pytest.approx(float(raw.clamp_max(0).abs().sum() / raw.abs().sum()))
    assert float(rows[-1]["d/neg_fraction_epoch"]) == pytest.approx(stats["neg_fraction"])
    assert float(rows[-1]["d/neg_mass_epoch"]) == pytest.approx(stats["neg_mass"], rel=1e-5, abs=1e-9)
    W = system.dictionary()  # max(W, 0), column-normalised
    assert W.shape == (20, 4)
    torch.testing.assert_close(W.norm(dim=0), torch.ones(4))


def test_vae_nmf_system_same_seed_same_dictionary(make_trainer):
    X = _data(m=20, n=256)
    dictionaries = []
    for _ in range(2):
        pl.seed_everything(5)
        system = VAENMFSystem(n_features=20, rank=3, seed=5)
        make_trainer(3).fit(system, datamodule=MatrixDataModule(X, batch_size=64, seed=5))
        dictionaries.append(system.dictionary())
    torch.testing.assert_close(dictionaries[0], dictionaries[1], rtol=0, atol=0)


def test_encoding_dnn_system_fits_a_nonnegative_map(make_trainer):
    g = torch.Generator().manual_seed(0)
    inputs = torch.rand(512, 12, generator=g)
    targets = torch.nn.functional.softplus(inputs @ torch.randn(12, 6, generator=g))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(inputs, targets), batch_size=64, shuffle=True
    )
    system = EncodingDNNSystem(n_features=12, rank=3, hidden=64)
    before = torch.nn.functional.mse_loss(system.model.eval()(inputs), targets).item()
    system.model.train()
    make_trainer(30).fit(system, train_dataloaders=loader)
    after = torch.nn.functional.mse_loss(system.model.eval()(inputs), targets).item()
    assert after < 0.2 * before
