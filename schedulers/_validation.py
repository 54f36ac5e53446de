"""Argument checks shared by every schedule.

Each check raises a built-in ``ValueError`` (or ``TypeError`` for a value of the wrong kind)
whose message names the key in backticks, the constraint, and the value received, in the
style of PyTorch's and Optuna's own errors. The checks return the value converted to the type
the math uses, so a schedule validates and normalises in one pass.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def real(
    name: str,
    value: object,
    *,
    ge: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
) -> float:
    """Return ``value`` as a finite float that satisfies the given bounds.

    Example:
        >>> real("cycle_max_lr", 0.1, ge=0.0)
        0.1
    """
    if not _is_real(value):
        raise TypeError(f"`{name}` must be a real number, got {value!r}")
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise ValueError(f"`{name}` must be finite, got {value!r}")
    if ge is not None and not number >= ge:
        raise ValueError(f"`{name}` must be >= {ge}, got {value!r}")
    if gt is not None and not number > gt:
        raise ValueError(f"`{name}` must be > {gt}, got {value!r}")
    if lt is not None and not number < lt:
        raise ValueError(f"`{name}` must be < {lt}, got {value!r}")
    return number


def integer(name: str, value: object, *, ge: int | None = None, gt: int | None = None) -> int:
    """Return ``value`` as an int (bools and floats are refused) that satisfies the bounds.

    Example:
        >>> integer("warmup_num_steps", 10, gt=0)
        10
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be an integer, got {value!r}")
    if ge is not None and value < ge:
        raise ValueError(f"`{name}` must be >= {ge}, got {value!r}")
    if gt is not None and value <= gt:
        raise ValueError(f"`{name}` must be > {gt}, got {value!r}")
    return value


def boolean(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool; 0/1 or strings are refused as ambiguous."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be true or false, got {value!r}")
    return value


def ordered(low_name: str, low: float, high_name: str, high: float) -> None:
    """Refuse ``low > high``: a cycle whose minimum is above its maximum runs backwards."""
    if low > high:
        raise ValueError(
            f"`{low_name}` must be <= `{high_name}`, got {low_name}={low!r} > {high_name}={high!r}"
        )


def per_group(name: str, value: object, num_groups: int) -> list[Any]:
    """Broadcast a scalar to ``num_groups`` values, or check a per-group list's length.

    Example:
        >>> per_group("cycle_min_lr", [0.1, 0.2], 2)
        [0.1, 0.2]
    """
    if isinstance(value, (list, tuple)):
        if len(value) != num_groups:
            raise ValueError(
                f"`{name}` must have one value per param group ({num_groups}), "
                f"got {len(value)}: {list(value)!r}"
            )
        return list(value)
    return [value] * num_groups


def known_keys(where: str, given: Iterable[str], allowed: Sequence[str]) -> None:
    """Refuse keys that are not in ``allowed``, suggesting the closest allowed one."""
    for key in given:
        if key in allowed:
            continue
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else f"; expected one of {list(allowed)}"
        raise ValueError(f"unknown key `{key}` in {where}{hint}")


def required(where: str, params: Mapping[str, object], names: Iterable[str]) -> None:
    """Refuse a params mapping that lacks a required key."""
    for key in names:
        if key not in params:
            raise ValueError(f"missing required key `{key}` in {where}")
