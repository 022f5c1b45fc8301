"""Input checks with one message style: `<input> must be <what is allowed>; got <value>`.

Every package imports these (velocity/, tiling/, samplers/, nodes/); this module imports nothing of
Solune, so nothing imports upward. Each check returns the value, converted (float, int, bool,
str), or raises a ValueError; `error_of` turns a check into the text a node's `validate_inputs`
returns. Numbers are finite ints or floats, never bools or strings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real


def _fail(name: str, allowed: str, value, hint: str = "") -> ValueError:
    return ValueError(f"{name} must be {allowed}; got {value!r}{f' ({hint})' if hint else ''}")


def _range(kind: str, lo, hi, lo_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"{kind} in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    if lo is not None:
        return f"{kind} {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{kind} <= {hi:g}"
    return kind


def check_number(
    name: str, value, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hint: str = ""
) -> float:
    """A finite number in [lo, hi] ((lo, hi] with `lo_open`; a missing bound is unbounded)."""
    allowed = _range("a number", lo, hi, lo_open)
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise _fail(name, allowed if lo is not None or hi is not None else "a finite number", value, hint)
    if lo is not None and (value <= lo if lo_open else value < lo) or hi is not None and value > hi:
        raise _fail(name, allowed, value, hint)
    return float(value)


def check_int(name: str, value, lo: int | None = None, hi: int | None = None, *, hint: str = "") -> int:
    """An integer (Python or numpy, not a bool) in [lo, hi] (a missing bound is unbounded)."""
    allowed = _range("an integer", lo, hi, False)
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise _fail(name, allowed, value, hint)
    if lo is not None and value < lo or hi is not None and value > hi:
        raise _fail(name, allowed, int(value), hint)
    return int(value)


def check_choice(name: str, value, choices: Sequence[str], *, hint: str = "") -> str:
    """One of `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise _fail(name, f"one of {', '.join(choices)}", value, hint)
    return value


def check_bool(name: str, value) -> bool:
    """True or False (not 0 / 1 or a string)."""
    if not isinstance(value, bool):
        raise _fail(name, "true or false", value)
    return value


def check_order(low_name: str, low: float, high_name: str, high: float) -> None:
    """low <= high, naming both inputs."""
    if low > high:
        raise _fail(low_name, f"<= {high_name} ({high!r})", low)


def check_finite(name: str, x) -> None:
    """A tensor with only finite values (one host sync; call it once per input, never per step)."""
    import torch

    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        n_nan, n_inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
        raise ValueError(
            f"{name} must hold only finite values; got {n_nan} NaN and {n_inf} inf of {x.numel()} values "
            f"(shape {tuple(x.shape)})"
        )


def error_of(check: Callable, *args, **kwargs) -> str | None:
    """The message of `check(*args, **kwargs)` if it raises a ValueError, else None."""
    try:
        check(*args, **kwargs)
    except ValueError as err:
        return str(err)
    return None
