import math

import pytest
import torch

from vaenmf.errors import ConfigError
from vaenmf.nmf import beta_divergence


def _pair():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(7, 5, generator=g, dtype=torch.float64) + 0.1
    Y = torch.rand(7, 5, generator=g, dtype=torch.float64) + 0.1
    return X, Y


def test_closed_forms_elementwise():
    X, Y = _pair()
    x, y = float(X[2, 3]), float(Y[2, 3])
    d = {b: beta_divergence(X, Y, b, reduction="none")[2, 3].item() for b in (0, 1, 2, 0.5)}
    assert d[2] == pytest.approx(0.5 * (x - y) ** 2, rel=1e-12)
    assert d[1] == pytest.approx(x * math.log(x / y) - x + y, rel=1e-12)
    assert d[0] == pytest.approx(x / y - math.log(x / y) - 1, rel=1e-12)
    assert d[0.5] == pytest.approx(
        (x**0.5 + (0.5 - 1) * y**0.5 - 0.5 * x * y ** (-0.5)) / (0.5 * -0.5), rel=1e-12
    )


@pytest.mark.parametrize("beta", [0, 0.5, 1, 1.5, 2])
def test_divergence_is_zero_iff_equal_and_positive_otherwise(beta):
    X, Y = _pair()
    assert beta_divergence(X, X, beta).item() == pytest.approx(0.0, abs=1e-12)
    assert beta_divergence(X, Y, beta).item() > 0


@pytest.mark.parametrize("beta", [0.999999, 1.000001])
def test_general_formula_is_continuous_at_kl(beta):
    X, Y = _pair()
    assert beta_divergence(X, Y, beta).item() == pytest.approx(beta_divergence(X, Y, 1).item(), rel=1e-4)


def test_kl_handles_zeros_in_data():
    X = torch.tensor([[0.0, 1.0]])
    Y = torch.tensor([[0.5, 1.0]])
    assert beta_divergence(X, Y, 1).item() == pytest.approx(0.5)


def test_reductions_and_bad_arguments():
    X, Y = _pair()
    assert beta_divergence(X, Y, 2, reduction="mean").item() == pytest.approx(
        beta_divergence(X, Y, 2).item() / 35
    )
    with pytest.raises(ConfigError, match="reduction"):
        beta_divergence(X, Y, 2, reduction="max")
    with pytest.raises(ConfigError, match="beta"):
        beta_divergence(X, Y, "kl")
