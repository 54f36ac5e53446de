"""``cycle_min_lr: auto`` / ``cycle_max_lr: auto``: search bounds set by the LR range test.

The sweep file keeps ``auto``; the range test's result is stored beside it
(``range_test.result``) in the sweep's record, and every worker turns the two into the same
plain ranges with :func:`resolve_auto`. A result can also be written into the file by hand, which
pins the bounds and skips the test.
"""

from __future__ import annotations

import math
from typing import Any

from sweeps.config import AutoRange, Choices, Range, RangeTestResult, SweepConfig


def resolve_auto(config: SweepConfig) -> SweepConfig:
    """``config`` with each ``auto`` entry replaced by its log-scale range.

    ``cycle_max_lr``: ``[s / below, s * above]`` around the suggested value, the upper end
    capped at the lr where the test diverged. ``cycle_min_lr``: the same around its suggestion,
    capped so that it never starts above the lowest ``cycle_max_lr`` the space allows.

    Raises:
        ValueError: ``auto`` entries but no range test result yet.
    """
    keys = config.auto_keys
    if not keys:
        return config
    result = config.range_test.result
    if result is None:
        raise ValueError(
            f"search.space.{keys[0]}: `auto` needs a range test result; `onecycle run` runs "
            "the test first (or pin one under range_test.result)"
        )
    space: dict[str, Any] = dict(config.search.space)
    if "cycle_max_lr" in keys:
        entry = space["cycle_max_lr"]
        ceiling = result.lr_diverged if result.lr_diverged is not None else math.inf
        space["cycle_max_lr"] = _around(result.cycle_max_lr, entry, ceiling)
    if "cycle_min_lr" in keys:
        entry = space["cycle_min_lr"]
        space["cycle_min_lr"] = _around(result.cycle_min_lr, entry, _lowest_max(config, space))
    search = config.search.model_copy(update={"space": space})
    return config.model_copy(update={"search": search})


def _around(value: float, entry: AutoRange, ceiling: float) -> Range:
    high = min(value * entry.above, ceiling)
    low = min(value / entry.below, high)
    return Range(low=low, high=high, log=True)


def _lowest_max(config: SweepConfig, space: dict[str, Any]) -> float:
    entry = space.get("cycle_max_lr", config.scheduler.get("cycle_max_lr"))
    if isinstance(entry, Range):
        return entry.low
    if isinstance(entry, (int, float)) and not isinstance(entry, bool):
        return float(entry)
    if isinstance(entry, Choices):
        return min(float(c) for c in entry.choices if isinstance(c, (int, float)))
    return math.inf


def with_result(config: SweepConfig, result: RangeTestResult) -> SweepConfig:
    """``config`` with the range test's result recorded."""
    section = config.range_test.model_copy(update={"result": result})
    return config.model_copy(update={"range_test": section})


def momentum_for_test(config: SweepConfig) -> float:
    """The momentum to hold during the range test: the cycle's momentum at its peak lr.

    1-Cycle runs its highest lr with ``cycle_min_mom``; a fixed value of it (in the space or
    the scheduler block) is used, else DeepSpeed's default 0.8. A searched one uses its lowest
    value: in lr terms, the lowest momentum has the lowest stability edge.
    """
    if config.range_test.momentum is not None:
        return config.range_test.momentum
    entry = config.search.space.get("cycle_min_mom", config.scheduler.get("cycle_min_mom"))
    if isinstance(entry, (int, float)) and not isinstance(entry, bool):
        return float(entry)
    if isinstance(entry, Range):
        return entry.low
    if isinstance(entry, Choices):
        numbers = [float(c) for c in entry.choices if isinstance(c, (int, float))]
        if numbers:
            return min(numbers)
    return 0.8
