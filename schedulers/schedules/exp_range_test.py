"""An exponential LR range test: the lr grows by a constant factor per step (or per stair).

DeepSpeed's :class:`~schedulers.schedules.LRRangeTestSchedule` grows the lr linearly, which
spends almost every step in the top decade of a sweep from 1e-5 to 10. A range test that has to
find the stability edge of a model nobody has tuned yet wants the same number of steps in
every decade: ``lr = min_lr * (max_lr / min_lr) ** (interval / intervals)``. Not a DeepSpeed
schedule (it has no ``deepspeed_type``); it exists for ``onecycle range-test``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from schedulers import _validation as check
from schedulers.schedules.base import Schedule


@dataclass(frozen=True)
class ExponentialRangeTestSchedule(Schedule):
    """``min_lr`` at step 0 to ``max_lr`` at step ``num_steps``, geometric in between.

    With ``stair_size`` > 1 the lr is held for ``stair_size`` steps at a time (the first stair
    at ``min_lr``, the stair that contains ``num_steps`` at ``max_lr``); past ``num_steps`` the
    growth continues at the same rate.

    Example:
        >>> s = ExponentialRangeTestSchedule(min_lr=1e-4, max_lr=1.0, num_steps=4)
        >>> [round(s.lr(k), 6) for k in range(5)]
        [0.0001, 0.001, 0.01, 0.1, 1.0]
    """

    min_lr: float = 1e-5
    max_lr: float = 10.0
    num_steps: int = 300
    stair_size: int = 1

    _low: float = field(init=False, repr=False, compare=False)
    _log_rate: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        low = check.real("min_lr", self.min_lr, gt=0.0)
        high = check.real("max_lr", self.max_lr, gt=0.0)
        check.ordered("min_lr", low, "max_lr", high)
        steps = check.integer("num_steps", self.num_steps, gt=0)
        stair = check.integer("stair_size", self.stair_size, gt=0)
        intervals = max(1, steps // stair)
        put = object.__setattr__
        put(self, "_low", low)
        put(self, "_log_rate", (math.log(high) - math.log(low)) / intervals)

    def _lr(self, step: int) -> float:
        interval = step // self.stair_size if self.stair_size > 1 else step
        return self._low * math.exp(self._log_rate * interval)

    @property
    def horizon(self) -> int:
        """The whole sweep, to ``max_lr``."""
        return self.num_steps + 1

    def phase(self, step: int) -> str:
        """Always ``ramp``."""
        return "ramp"
