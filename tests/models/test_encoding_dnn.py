"""Tests of the Kang et al. encoding DNN and the context stacking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaenmf.errors import ConfigError, DataError
from vaenmf.models import EncodingDNN, stack_context


def _frames(n: int, m: int) -> torch.Tensor:
    # Frame t has every entry equal to t (+ a per-bin offset), so positions are easy to read back.
    return torch.arange(n, dtype=torch.float32).unsqueeze(1) + torch.arange(m) / 100.0


def test_stack_context_shapes_and_order() -> None:
    x = _frames(5, 3)
    out = stack_context(x, 1)
    assert out.shape == (5, 9)
    torch.testing.assert_close(out[2], torch.cat([x[1], x[2], x[3]]))
    # Edge replication: before the first frame is the first frame, after the last is the last.
    torch.testing.assert_close(out[0], torch.cat([x[0], x[0], x[1]]))
    torch.testing.assert_close(out[4], torch.cat([x[3], x[4], x[4]]))
    out2 = stack_context(x, 2)
    assert out2.shape == (5, 15)
    torch.testing.assert_close(out2[0], torch.cat([x[0], x[0], x[0], x[1], x[2]]))
    torch.testing.assert_close(out2[4], torch.cat([x[2], x[3], x[4], x[4], x[4]]))


def test_stack_context_zero_context_single_frame_and_numpy() -> None:
    x = _frames(4, 2)
    torch.testing.assert_close(stack_context(x, 0), x)
    one = stack_context(x[:1], 3)
    torch.testing.assert_close(one, x[:1].repeat(1, 7))
    out = stack_context(np.ones((3, 2), dtype=np.float64), 1)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 6) and out.dtype == torch.float64


@pytest.mark.parametrize(
    ("frames", "context", "match"),
    [
        (torch.ones(3), 1, "nonempty"),
        (torch.ones(0, 4), 1, "nonempty"),
        (torch.ones(3, 4), -1, "context"),
        (torch.ones(3, 4), 1.5, "context"),
    ],
)
def test_stack_context_bad_input(frames, context, match) -> None:
    with pytest.raises(DataError, match=match):
        stack_context(frames, context)


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
