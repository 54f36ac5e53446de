"""DeepSpeed's warm-up schedules: ``WarmupLR`` (then constant) and ``WarmupDecayLR`` (then linear).

Both ramp from ``warmup_min_lr`` to ``warmup_max_lr`` over ``warmup_num_steps`` steps,
logarithmically by default. As in DeepSpeed the ramp's first two optimizer updates use
``warmup_min_lr`` (log(1) = 0), and ``warmup_num_steps`` below 2 counts as 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from schedulers import _validation as check
from schedulers.schedules.base import Schedule

WARMUP_TYPES = ("log", "linear")


def warmup_fraction(last_batch_iteration: int, num_steps: int, warmup_type: str) -> float:
    """Fraction of the warm-up done at DeepSpeed's ``last_batch_iteration`` (0 <= it < n)."""
    if warmup_type == "log":
        return (1.0 / math.log(num_steps)) * math.log(last_batch_iteration + 1)
    return last_batch_iteration / num_steps


def check_warmup(warmup_num_steps: object, warmup_type: object) -> int:
    """Validate the two warm-up keys; return the effective step count (at least 2)."""
    steps = check.integer("warmup_num_steps", warmup_num_steps, gt=0)
    if warmup_type not in WARMUP_TYPES:
        # DeepSpeed only logs a warning and falls back to "log"; a typo should not pass silently.
        raise ValueError(f"`warmup_type` must be one of {list(WARMUP_TYPES)}, got {warmup_type!r}")
    return max(2, steps)


@dataclass(frozen=True)
class WarmupLRSchedule(Schedule):
    """Warm up from ``warmup_min_lr`` to ``warmup_max_lr``, then hold.

    ``warmup_max_lr`` must be a number here; the torch adapter resolves DeepSpeed's ``None``
    (the optimizer's own lr) before building the schedule.

    Example:
        >>> s = WarmupLRSchedule(warmup_max_lr=0.1, warmup_num_steps=10, warmup_type="linear")
        >>> s.lr(0), s.lr(6), s.lr(50)
        (0.0, 0.05, 0.1)
    """

    warmup_min_lr: float = 0.0
    warmup_max_lr: float = 0.001
    warmup_num_steps: int = 1000
    warmup_type: str = "log"

    deepspeed_type = "WarmupLR"

    _min_lr: float = field(init=False, repr=False, compare=False)
    _delta: float = field(init=False, repr=False, compare=False)
    _n: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        low = check.real("warmup_min_lr", self.warmup_min_lr, ge=0.0)
        high = check.real("warmup_max_lr", self.warmup_max_lr, ge=0.0)
        check.ordered("warmup_min_lr", low, "warmup_max_lr", high)
        put(self, "_n", check_warmup(self.warmup_num_steps, self.warmup_type))
        put(self, "_min_lr", low)
        put(self, "_delta", high - low)

    def _gamma(self, last_batch_iteration: int) -> float:
        if last_batch_iteration < self._n:
            return warmup_fraction(last_batch_iteration, self._n, self.warmup_type)
        return 1.0

    def _lr(self, step: int) -> float:
        last_batch_iteration = step - 1
        if last_batch_iteration < 0:
            return self._min_lr
        return self._min_lr + self._delta * self._gamma(last_batch_iteration)

    @property
    def horizon(self) -> int:
        """The warm-up and as long again at the top."""
        return 2 * self._n + 1

    def milestones(self) -> dict[str, float]:
        """The end of the warm-up."""
        return {"warm-up end": float(self._n)}

    def phase(self, step: int) -> str:
        """``warm-up`` or ``hold``."""
        return "warm-up" if step <= self._n else "hold"


@dataclass(frozen=True)
class WarmupDecayLRSchedule(WarmupLRSchedule):
    """Warm up, then decay linearly to ``warmup_min_lr`` at ``total_num_steps``.

    Example:
        >>> s = WarmupDecayLRSchedule(total_num_steps=20, warmup_max_lr=0.1, warmup_num_steps=10)
        >>> s.lr(11), s.lr(21)
        (0.1, 0.0)
    """

    total_num_steps: int = 0

    deepspeed_type = "WarmupDecayLR"

    def __post_init__(self) -> None:
        super().__post_init__()
        check.integer("total_num_steps", self.total_num_steps, gt=0)

    def _gamma(self, last_batch_iteration: int) -> float:
        if last_batch_iteration < self._n:
            return warmup_fraction(last_batch_iteration, self._n, self.warmup_type)
        remaining = float(self.total_num_steps - last_batch_iteration)
        return max(0.0, remaining / float(max(1.0, self.total_num_steps - self._n)))

    @property
    def horizon(self) -> int:
        """The whole run and a tenth more."""
        return max(self.total_num_steps, self._n) * 11 // 10 + 2

    def milestones(self) -> dict[str, float]:
        """The end of the warm-up and of the decay."""
        return {"warm-up end": float(self._n), "decay end": float(self.total_num_steps + 1)}

    def phase(self, step: int) -> str:
        """``warm-up``, ``decay`` or ``floor``."""
        if step <= self._n:
            return "warm-up"
        return "decay" if step <= self.total_num_steps + 1 else "floor"
