"""DeepSpeed's LR range test: the lr grows linearly (optionally in stairs) from a minimum.

Used to find the lr at which training starts to diverge, which bounds ``cycle_max_lr``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from schedulers import _validation as check
from schedulers.schedules.base import Schedule


@dataclass(frozen=True)
class LRRangeTestSchedule(Schedule):
    """``lr = min_lr * (1 + step_rate * step / step_size)``, floored per interval if staircase.

    Example:
        >>> s = LRRangeTestSchedule(lr_range_test_min_lr=1e-3, lr_range_test_step_size=100)
        >>> s.lr(0), s.lr(100)
        (0.001, 0.002)
    """

    lr_range_test_min_lr: float = 1e-3
    lr_range_test_step_size: int = 2000
    lr_range_test_step_rate: float = 1.0
    lr_range_test_staircase: bool = False

    deepspeed_type = "LRRangeTest"

    _min_lr: float = field(init=False, repr=False, compare=False)
    _rate: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "_min_lr", check.real("lr_range_test_min_lr", self.lr_range_test_min_lr, gt=0.0))
        check.integer("lr_range_test_step_size", self.lr_range_test_step_size, gt=0)
        # A negative rate would sweep the lr down through zero: not a range test.
        rate = check.real("lr_range_test_step_rate", self.lr_range_test_step_rate, ge=0.0)
        put(self, "_rate", rate)
        check.boolean("lr_range_test_staircase", self.lr_range_test_staircase)

    def _lr(self, step: int) -> float:
        interval = float(step) / self.lr_range_test_step_size
        if self.lr_range_test_staircase:
            interval = math.floor(interval)
        return self._min_lr * (1 + self._rate * interval)

    @property
    def horizon(self) -> int:
        """Ten intervals of growth."""
        return 10 * self.lr_range_test_step_size + 1

    def phase(self, step: int) -> str:
        """Always ``ramp``."""
        return "ramp"
