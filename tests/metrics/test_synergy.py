"""Tests of vaenmf.metrics.synergy: VAF, its summary over movements, matched cosine."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaenmf.errors import DataError
from vaenmf.metrics import matched_cosine, summarise_vaf, vaf


# -------------------------------------------------------------------------------------------------- VAF
def test_vaf_closed_form():
    rng = np.random.default_rng(0)
    X = rng.random((10, 200))
    assert vaf(X, X) == pytest.approx(1.0)
    assert vaf(X, np.zeros_like(X)) == pytest.approx(0.0)
    per_row = vaf(X, X, axis=1)
    assert per_row.shape == (10,)
    np.testing.assert_allclose(per_row, 1.0)
    np.testing.assert_allclose(vaf(X, np.zeros_like(X), axis=1), 0.0)
    # x_hat = c x gives 1 - (1 - c)^2 in every row and overall.
    np.testing.assert_allclose(vaf(X, 0.5 * X, axis=1), 0.75)
    assert vaf(X, 0.5 * X) == pytest.approx(0.75)
    # Overall VAF is the energy-weighted mean of the per-row VAFs.
    X_hat = X + 0.1 * rng.standard_normal(X.shape)
    energy = (X**2).sum(axis=1)
    assert vaf(X, X_hat) == pytest.approx(float((vaf(X, X_hat, axis=1) * energy).sum() / energy.sum()))
    assert vaf(torch.from_numpy(X), torch.from_numpy(X_hat)) == pytest.approx(vaf(X, X_hat))


def test_vaf_errors_and_zero_row():
    X = np.ones((3, 5))
    X[1] = 0.0
    out = vaf(X, X, axis=1)
    assert out[0] == 1.0 and math.isnan(out[1])
    with pytest.raises(DataError, match="same shape"):
        vaf(X, X[:, :4])
    with pytest.raises(DataError, match="NaN"):
        vaf(X, np.full_like(X, np.nan))


def test_matched_cosine_is_permutation_and_scale_invariant():
    rng = np.random.default_rng(0)
    W = rng.gamma(0.5, 1.0, size=(10, 4))
    assert matched_cosine(W[:, [2, 0, 3, 1]] * 5.0, W) == pytest.approx(1.0)
    other = rng.gamma(0.5, 1.0, size=(10, 4))
    assert matched_cosine(other, W) < 0.95


def test_summarise_vaf_means_over_movements():
    rows = [
        {"vaf": {"train/fixed_w": {"overall": 0.9, "per_muscle": [0.8, 1.0]}}, "synergy_recovery": 0.5},
        {"vaf": {"train/fixed_w": {"overall": 0.7, "per_muscle": [0.6, 0.8]}}, "synergy_recovery": 1.0},
    ]
    summary = summarise_vaf(rows)
    entry = summary["train/fixed_w"]
    assert entry["vaf_mean"] == pytest.approx(0.8) and entry["vaf_min"] == pytest.approx(0.7)
    assert entry["per_muscle_mean"] == pytest.approx([0.7, 0.9]) and entry["n_movements"] == 2
    assert summary["synergy_recovery"]["mean"] == pytest.approx(0.75)
