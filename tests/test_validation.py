"""The package-wide checks: what each accepts, what it returns, and the one message format."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaenmf.errors import ConfigError, DataError
from vaenmf.validation import (
    as_int,
    as_int_list,
    as_nonnegative_tensor,
    check_choice,
    check_int,
    check_number,
    check_number_list,
    check_rank,
)


def test_check_int_takes_integers_only():
    assert check_int(3, "n", minimum=1) == 3
    value = check_int(np.int64(3), "n", minimum=1)
    assert value == 3 and type(value) is int
    assert check_int(None, "boost", minimum=0, allow_none=True) is None
    for bad, expected in (
        (0, "n must be a positive integer, got 0"),
        (2.0, "n must be a positive integer, got 2.0"),
        (True, "n must be a positive integer, got True"),
        ("2", "n must be a positive integer, got '2'"),
        (None, "n must be a positive integer, got None"),
    ):
        with pytest.raises(ConfigError) as info:
            check_int(bad, "n", minimum=1)
        assert str(info.value) == expected
    with pytest.raises(
        DataError, match=r"^context must be a nonnegative integer or None \(frames\), got -1$"
    ):
        check_int(-1, "context", minimum=0, allow_none=True, error=DataError, hint="frames")
    with pytest.raises(ConfigError, match="^k must be an integer >= 3, got 2$"):
        check_int(2, "k", minimum=3)


def test_as_int_also_converts_integral_floats():
    value = as_int(1e4, "data.dict_speech_frames", minimum=1)
    assert value == 10000 and type(value) is int
    assert as_int(np.float32(16000.0), "sr", minimum=1) == 16000
    assert as_int(None, "data.n_test_utterances", minimum=1, allow_none=True) is None
    for bad in (2.5, math.inf, math.nan, True, "4", 0):
        with pytest.raises(ConfigError, match="must be a positive integer"):
            as_int(bad, "x", minimum=1)


def test_integer_lists():
    assert as_int_list([1, 2.0, np.int64(3)], "data.subjects") == [1, 2, 3]
    assert as_int_list(None, "data.movements", allow_none=True) is None
    for bad in (None, [], [0, 1], [1.5], "12", 3):
        with pytest.raises(
            ConfigError, match="^data.subjects must be a nonempty list of positive integers, got"
        ):
            as_int_list(bad, "data.subjects")


def test_check_number_bounds_and_messages():
    assert check_number("0.5", "f", above=0, below=1) == 0.5
    assert check_number(0, "w", at_least=0) == 0.0
    cases = [
        ({}, math.inf, "x must be a number (finite), got inf"),
        ({"above": 0}, 0.0, "x must be finite and > 0, got 0.0"),
        ({"at_least": 0}, -1, "x must be finite and >= 0, got -1"),
        ({"above": 0, "below": 1}, 1.0, "x must be in (0, 1), got 1.0"),
        ({"at_least": 0, "below": 1}, math.nan, "x must be in [0, 1), got nan"),
        ({"hint": "dB"}, "loud", "x must be a number (finite; dB), got 'loud'"),
    ]
    for kwargs, bad, expected in cases:
        with pytest.raises(ConfigError) as info:
            check_number(bad, "x", **kwargs)
        assert str(info.value) == expected


def test_number_lists_and_choices():
    assert check_number_list([-5, "0", 5.5], "data.test_snrs") == (-5.0, 0.0, 5.5)
    for bad in ([], [0, math.nan], ["x"], None):
        with pytest.raises(ConfigError, match="^data.test_snrs must be a nonempty list of finite numbers"):
            check_number_list(bad, "data.test_snrs")
    assert check_choice("babble", ("factory", "babble"), "data.noise") == "babble"
    with pytest.raises(
        DataError, match=r"^unknown data.noise 'street'; expected one of \['factory', 'babble'\]$"
    ):
        check_choice("street", ("factory", "babble"), "data.noise", error=DataError)


def test_tensor_and_rank_checks():
    X = as_nonnegative_tensor(np.ones((2, 3)), dtype=torch.float32)
    assert X.dtype == torch.float32 and X.shape == (2, 3)
    with pytest.raises(DataError, match="negative"):
        as_nonnegative_tensor(-torch.ones(2))
    assert check_rank(np.int64(2), (2, 3)) == 2
    with pytest.raises(DataError, match="^rank must be a positive integer, got 2.0$"):
        check_rank(2.0, (2, 3))
    with pytest.raises(DataError, match="larger than min"):
        check_rank(3, (2, 3))
