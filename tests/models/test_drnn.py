"""The Huang et al. DRNN module and its discriminative loss."""

from __future__ import annotations

import pytest
import torch

from vaenmf.data.features import stack_context
from vaenmf.errors import ConfigError, DataError
from vaenmf.models.drnn import DRNN, discriminative_loss, stack_context_batch

F_BINS = 17


def _model(**kwargs) -> DRNN:
    torch.manual_seed(0)
    return DRNN(F_BINS, hidden=kwargs.pop("hidden", 12), **kwargs)


def _input(B=3, T=20, seed=1) -> torch.Tensor:
    return torch.rand(B, T, F_BINS, generator=torch.Generator().manual_seed(seed)) * 5


def test_stack_context_batch_matches_per_sequence_stacking():
    x = _input(B=3, T=7)
    stacked = stack_context_batch(x, 1)
    assert stacked.shape == (3, 7, 3 * F_BINS)
    for b in range(3):
        torch.testing.assert_close(stacked[b], stack_context(x[b], 1), rtol=0, atol=0)


@pytest.mark.parametrize("recurrent_layer", [1, 2, 3])
def test_shapes_and_masks_split_the_mixture(recurrent_layer):
    model = _model(recurrent_layer=recurrent_layer)
    x = _input()
    with torch.no_grad():
        y1, y2 = model(x)
    assert y1.shape == y2.shape == x.shape
    assert (y1 >= 0).all() and (y2 >= 0).all()
    # The two masks sum to one: the estimates add up to the noisy magnitude to float rounding (1 ulp).
    torch.testing.assert_close(y1 + y2, x, rtol=2**-23, atol=0)
    # Both estimates are informative, not a trivial all-to-one-side split.
    assert 0 < float((y1 / x).mean()) < 1


def test_mask_is_the_ratio_of_output_magnitudes():
    model = _model()
    a1 = torch.tensor([[3.0, -1.0, 0.0, 0.0]])
    a2 = torch.tensor([[-1.0, 3.0, 2.0, 0.0]])
    x = torch.tensor([[4.0, 4.0, 4.0, 4.0]])
    y1, y2 = model.mask(a1, a2, x)
    # |a1| / (|a1| + |a2|) * x; the undefined 0/0 splits evenly.
    torch.testing.assert_close(y1, torch.tensor([[3.0, 1.0, 0.0, 2.0]]))
    torch.testing.assert_close(y2, torch.tensor([[1.0, 3.0, 4.0, 2.0]]))


def test_recurrence_is_causal_with_one_frame_look_ahead():
    model = _model(context=1)
    x = _input(B=1, T=30)
    y_ref, _ = model(x)
    t = 12
    x2 = x.clone()
    x2[:, t + 2] += 3.0  # frame t + 2: only frames >= t + 1 may see it (frame t + 1 through its look-ahead)
    y_new, _ = model(x2)
    torch.testing.assert_close(y_new[:, : t + 1], y_ref[:, : t + 1], rtol=0, atol=0)
    assert (y_new[:, t + 1] - y_ref[:, t + 1]).abs().max() > 1e-4
    # The recurrence carries the change forward beyond the context window.
    assert (y_new[:, t + 6] - y_ref[:, t + 6]).abs().max() > 1e-6


def test_recurrent_state_carries_information_across_frames():
    # Without the recurrence a frame's output would depend only on frames t-1..t+1; with it, on all earlier ones.
    model = _model(context=1, recurrent_layer=1)
    x = _input(B=1, T=30)
    x2 = x.clone()
    x2[:, 0] += 5.0
    y_ref, _ = model(x)
    y_new, _ = model(x2)
    assert (y_new[:, 10] - y_ref[:, 10]).abs().max() > 1e-7


def test_loss_equals_hand_computation():
    g = torch.Generator().manual_seed(3)
    y1, y2, s, n = (torch.rand(2, 5, 4, generator=g) for _ in range(4))
    gamma = 0.3
    expected = 0.5 * (
        ((y1 - s) ** 2).sum()
        + ((y2 - n) ** 2).sum()
        - gamma * (((y1 - n) ** 2).sum() + ((y2 - s) ** 2).sum())
    )
    torch.testing.assert_close(discriminative_loss(y1, y2, s, n, gamma=gamma), expected)
    torch.testing.assert_close(
        discriminative_loss(y1, y2, s, n, gamma=gamma, reduction="mean"), expected / y1.numel()
    )
    # A tiny numeric example worked out by hand: own errors 1 and 4, cross errors 9 and 0.
    one = torch.tensor([1.0])
    value = discriminative_loss(one * 2, one * 3, one * 1, one * 5, gamma=0.1)
    assert float(value) == pytest.approx(0.5 * ((1 + 4) - 0.1 * (9 + 4)))


def test_gamma_zero_is_plain_squared_error_sum():
    g = torch.Generator().manual_seed(4)
    y1, y2, s, n = (torch.rand(3, 6, F_BINS, generator=g) for _ in range(4))
    loss = discriminative_loss(y1, y2, s, n, gamma=0.0)
    mse_sum = torch.nn.functional.mse_loss(y1, s, reduction="sum") + torch.nn.functional.mse_loss(
        y2, n, reduction="sum"
    )
    torch.testing.assert_close(loss, 0.5 * mse_sum)
    # The discriminative term lowers the loss whenever the estimates differ from the other source.
    assert discriminative_loss(y1, y2, s, n, gamma=0.05) < loss


def test_gradients_reach_every_parameter():
    model = _model()
    x = _input()
    s, n = 0.6 * x, 0.4 * x
    y1, y2 = model(x)
    discriminative_loss(y1, y2, s, n).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_separate_takes_the_task_layout():
    model = _model().eval()
    x = _input(B=1, T=25)
    y1, _ = model(x)
    torch.testing.assert_close(model.separate(x[0].T), y1[0].T)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"recurrent_layer": 4}, "recurrent_layer"),
        ({"recurrent_layer": 0}, "recurrent_layer"),
        ({"n_layers": 0}, "n_layers"),
        ({"input_transform": "log"}, "input_transform"),
        ({"context": -1}, "context"),
        ({"eps": 0.0}, "eps"),
    ],
)
def test_bad_settings_are_config_errors(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        DRNN(F_BINS, **kwargs)


def test_wrong_input_shape_is_a_data_error():
    with pytest.raises(DataError, match="DRNN expects"):
        _model()(torch.rand(4, F_BINS))
    with pytest.raises(DataError, match="DRNN expects"):
        _model()(torch.rand(1, 5, F_BINS + 1))
    with pytest.raises(DataError, match="same shape"):
        discriminative_loss(torch.rand(2, 3), torch.rand(2, 3), torch.rand(2, 3), torch.rand(3, 2))
