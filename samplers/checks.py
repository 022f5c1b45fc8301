"""Input checks shared by the sampling maths and the nodes."""

from __future__ import annotations

import math


def check_fraction(name: str, value, low: float = 0.0, high: float = 1.0, low_open: bool = False) -> float:
    """A finite number (not a bool or string) in [low, high] — (low, high] with `low_open` — or
    ValueError naming the input, the value and the range."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        raise ValueError(f"{name} must be a number in {'(' if low_open else '['}{low:g}, {high:g}]; got {value!r}")
    return float(value)
