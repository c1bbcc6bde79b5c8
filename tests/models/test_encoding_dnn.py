"""Tests of the Kang et al. encoding DNN."""

from __future__ import annotations

import pytest
import torch

from vaenmf.data.features import stack_context
from vaenmf.errors import ConfigError, DataError
from vaenmf.models import EncodingDNN


@pytest.mark.parametrize("output_activation", ["softplus", "relu"])
@pytest.mark.parametrize("input_transform", ["log1p", "none"])
def test_encoding_dnn_output_shape_and_nonnegative(output_activation: str, input_transform: str) -> None:
    torch.manual_seed(0)
    net = EncodingDNN(
        n_features=17, rank=5, context=2, output_activation=output_activation, input_transform=input_transform
    )
    assert net.input_dim == 17 * 5
    frames = torch.rand(40, 17, generator=torch.Generator().manual_seed(1)) * 10
    x = stack_context(frames, 2)
    y = net(x)
    assert y.shape == (40, 10) and bool((y >= 0).all())
    s, n = net.split(y)
    assert s.shape == n.shape == (40, 5)
    net.eval()
    assert net(x[:1]).shape == (1, 10)


def test_encoding_dnn_architecture_and_learns() -> None:
    torch.manual_seed(0)
    net = EncodingDNN(n_features=8, rank=2)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [400, 400, 400, 4]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules()) == 3
    slopes = [m.negative_slope for m in net.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert slopes == [0.1, 0.1, 0.1]
    # A short MSE fit of a nonnegative linear target reduces the loss (the module is trainable end to end).
    g = torch.Generator().manual_seed(2)
    x = torch.rand(256, 8, generator=g)
    target = x @ torch.rand(8, 4, generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(net(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_encoding_dnn_bad_input_and_config() -> None:
    net = EncodingDNN(n_features=8, rank=2, context=1)
    with pytest.raises(DataError, match=r"\(batch, 24\)"):
        net(torch.rand(4, 8))
    with pytest.raises(ConfigError, match="output_activation"):
        EncodingDNN(8, 2, output_activation="tanh")
    with pytest.raises(ConfigError, match="context"):
        EncodingDNN(8, 2, context=-1)
