"""Input and configuration checks shared by the whole package (data, nmf, models, systems, tasks).

Every check raises a :class:`~vaenmf.errors.ConfigError` (a bad setting) or, where the caller says so, a
:class:`~vaenmf.errors.DataError` (bad data or a bad argument of a numerical function), with one message format
that names the key and what was expected::

    <key> must be <what was expected>[ (<hint>)], got <the value>
    unknown <key> <the value>; expected one of [<choices>]

Two integer checks, because the package has two kinds of integer input:

- :func:`check_int`: an argument that is used as given (a layer width, a rank, a context size) must already be
  an integer (``int`` or a numpy integer; never a ``bool`` or a float);
- :func:`as_int`: a value that is converted anyway (a data-module count, a sample rate) may also be an
  integral float such as ``1e4`` from a command line; it is returned as an ``int``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from vaenmf.errors import ConfigError, DataError, VaenmfError

if TYPE_CHECKING:  # torch is imported where tensors are made: the header checks of vaenmf-data stay light
    import torch

__all__ = [
    "as_int",
    "as_int_list",
    "as_nonnegative_tensor",
    "check_choice",
    "check_int",
    "check_number",
    "check_number_list",
    "check_rank",
    "check_scale",
]

T = TypeVar("T")


def _invalid(error: type[VaenmfError], key: str, expected: str, value: Any, hint: str = "") -> VaenmfError:
    """The one message format: ``<key> must be <expected>[ (<hint>)], got <value>``."""
    note = f" ({hint})" if hint else ""
    return error(f"{key} must be {expected}{note}, got {value!r}")


def _integer_phrase(minimum: int | None, allow_none: bool = False, plural: bool = False) -> str:
    """``a positive integer``, ``a nonnegative integer or None``, ``integers >= 2``, ..."""
    noun = "integers" if plural else "integer"
    if minimum in (0, 1):
        phrase = f"{'nonnegative' if minimum == 0 else 'positive'} {noun}"
        phrase = phrase if plural else f"a {phrase}"
    else:
        phrase = noun if plural else f"an {noun}"
        phrase = phrase if minimum is None else f"{phrase} >= {minimum}"
    return f"{phrase} or None" if allow_none else phrase


def _integer(
    value: Any,
    key: str,
    minimum: int | None,
    allow_none: bool,
    error: type[VaenmfError],
    hint: str,
    integral_floats: bool,
) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool):  # an int subclass, but True is no count
        ok = False
    elif isinstance(value, numbers.Integral):
        ok = True
    else:
        ok = (
            integral_floats
            and isinstance(value, numbers.Real)
            and math.isfinite(value)
            and float(value).is_integer()
        )
    if not ok or (minimum is not None and value < minimum):
        raise _invalid(error, key, _integer_phrase(minimum, allow_none), value, hint)
    return int(value)


def check_int(
    value: Any,
    key: str,
    minimum: int | None = None,
    *,
    allow_none: bool = False,
    error: type[VaenmfError] = ConfigError,
    hint: str = "",
) -> int | None:
    """Check that ``value`` is an integer (``int`` or numpy integer, not ``bool``), at least ``minimum``.

    Args:
        value: The value to check.
        key: Its name in the message, e.g. ``"n_layers"``.
        minimum: Smallest allowed value (None: any).
        allow_none: Accept (and return) None.
        error: Exception class to raise.
        hint: Appended to the message in parentheses, e.g. ``"0: never log"``.

    Returns:
        ``int(value)``, or None when ``value`` is None and ``allow_none``.

    Raises:
        ConfigError: (or ``error``) If the check fails.
    """
    return _integer(value, key, minimum, allow_none, error, hint, integral_floats=False)


def as_int(
    value: Any,
    key: str,
    minimum: int | None = None,
    *,
    allow_none: bool = False,
    error: type[VaenmfError] = ConfigError,
    hint: str = "",
) -> int | None:
    """:func:`check_int` that also accepts an integral float (``1e4``, ``16000.0``), returned as ``int``."""
    return _integer(value, key, minimum, allow_none, error, hint, integral_floats=True)


def as_int_list(
    values: Iterable[Any] | None,
    key: str,
    minimum: int | None = 1,
    *,
    allow_none: bool = False,
    error: type[VaenmfError] = ConfigError,
) -> list[int] | None:
    """A nonempty list of integers (each as :func:`as_int`, at least ``minimum``), or None if ``allow_none``.

    Raises:
        ConfigError: (or ``error``) If ``values`` is not a nonempty sequence of such integers.
    """
    if values is None and allow_none:
        return None
    expected = f"a nonempty list of {_integer_phrase(minimum, plural=True)}"
    expected = f"{expected} or None" if allow_none else expected
    try:
        out = [int(as_int(v, key, minimum, error=error)) for v in values]  # type: ignore[union-attr, arg-type]
    except (TypeError, VaenmfError):  # not iterable (None, a number), or a bad element: name the whole list
        raise _invalid(error, key, expected, values) from None
    if not out:
        raise _invalid(error, key, expected, values)
    return out


def check_number(
    value: Any,
    key: str,
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    error: type[VaenmfError] = ConfigError,
    hint: str = "",
) -> float:
    """Check that ``value`` is a finite real number within the given bounds; return it as a float.

    Args:
        value: Anything ``float()`` accepts (an int, a numpy scalar, ``"0.5"``).
        key: Its name in the message.
        above: Exclusive lower bound.
        at_least: Inclusive lower bound.
        below: Exclusive upper bound.
        error: Exception class to raise.
        hint: Appended to the message in parentheses, e.g. ``"dB"``.

    Raises:
        ConfigError: (or ``error``) If ``value`` is not a number, not finite or out of bounds.
    """
    # (bracket, bound, operator) of the lower bound, for the message.
    lower = (
        ("(", above, ">") if above is not None else ("[", at_least, ">=") if at_least is not None else None
    )
    if lower is not None and below is not None:
        expected = f"in {lower[0]}{lower[1]:g}, {below:g})"
    elif lower is not None:
        expected = f"finite and {lower[2]} {lower[1]:g}"
    elif below is not None:
        expected = f"finite and < {below:g}"
    else:  # "<key> must be a number (finite; <hint>)": the wording of the earlier beta message, matched on
        expected, hint = "a number", f"finite; {hint}" if hint else "finite"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _invalid(error, key, expected, value, hint) from None
    ok = (
        math.isfinite(number)
        and (above is None or number > above)
        and (at_least is None or number >= at_least)
        and (below is None or number < below)
    )
    if not ok:
        raise _invalid(error, key, expected, value, hint)
    return number


def check_number_list(
    values: Iterable[Any], key: str, *, error: type[VaenmfError] = ConfigError, hint: str = ""
) -> tuple[float, ...]:
    """A nonempty sequence of finite numbers, as a tuple of floats.

    Raises:
        ConfigError: (or ``error``) If ``values`` is not a nonempty sequence of finite numbers.
    """
    try:
        numbers_ = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        numbers_ = ()
    if not numbers_ or not all(math.isfinite(v) for v in numbers_):
        raise _invalid(error, key, "a nonempty list of finite numbers", values, hint)
    return numbers_


def check_choice(value: T, allowed: Sequence[Any], key: str, *, error: type[VaenmfError] = ConfigError) -> T:
    """Check that ``value`` is one of ``allowed``; return it.

    Raises:
        ConfigError: (or ``error``) ``unknown <key> <value>; expected one of [...]``.
    """
    if value not in allowed:
        raise error(f"unknown {key} {value!r}; expected one of {list(allowed)}")
    return value


def as_nonnegative_tensor(
    X: torch.Tensor | np.ndarray,
    name: str = "X",
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Return ``X`` as a floating tensor after checking it is finite and nonnegative.

    Args:
        X: Data matrix or batch, any shape.
        name: Name used in the error message.
        dtype: Target floating dtype (default: keep a floating dtype, else float32).
        device: Target device.

    Returns:
        ``X`` converted to ``dtype`` on ``device`` (``X`` itself when nothing changes).

    Raises:
        DataError: If ``X`` contains NaN/inf or negative values, or is empty.

    Shape:
        - X: any shape; output: the same shape.
    """
    import torch

    t = torch.as_tensor(X)
    if dtype is None:
        dtype = t.dtype if t.is_floating_point() else torch.float32
    t = t.to(dtype=dtype, device=device)
    if t.numel() == 0:
        raise DataError(f"{name} is empty (shape {tuple(t.shape)}); expected a nonempty nonnegative matrix")
    if not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise DataError(f"{name} contains {n_bad} NaN or infinite values; expected finite nonnegative data")
    min_value = float(t.min())
    if min_value < 0:
        n_neg = int((t < 0).sum())
        raise DataError(
            f"{name} contains {n_neg} negative values (min {min_value:.3g}); expected nonnegative data "
            "(e.g. a magnitude spectrogram or rectified EMG)"
        )
    return t


def check_rank(rank: int, shape: tuple[int, ...], name: str = "X") -> int:
    """Check that a factorisation rank fits a ``(m, n)`` data matrix.

    Returns:
        ``int(rank)``.

    Raises:
        DataError: If ``rank`` is not a positive integer no larger than ``min(m, n)``.
    """
    check_int(rank, "rank", minimum=1, error=DataError)
    if len(shape) != 2:
        raise DataError(f"{name} must be a 2-D (m, n) matrix, got shape {tuple(shape)}")
    limit = min(shape)
    if rank > limit:
        raise DataError(
            f"rank {rank} is larger than min(m, n) = {limit} for {name} of shape {tuple(shape)}; "
            f"choose rank <= {limit}"
        )
    return int(rank)


def check_scale(X: torch.Tensor, name: str = "X") -> None:
    """Refuse data whose squares overflow float32 (the likelihoods and divergences need ``x^2``), naming the scale.

    Args:
        X: Data, any shape.
        name: Its name in the message.

    Raises:
        DataError: If ``sum(x^2)`` is not finite in float32.
    """
    if not bool(X.float().pow(2).sum().isfinite()):
        peak = float(X.double().max())
        rms = float(X.double().pow(2).mean().sqrt())
        raise DataError(
            f"{name}: values up to {peak:.3g} (RMS {rms:.3g}) overflow float32 when squared, which the "
            "likelihoods and divergences need; rescale the data, e.g. divide it by its RMS"
        )
