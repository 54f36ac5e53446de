"""DeepSpeed's 1-Cycle policy as a closed form of the step.

A cycle phase moves the lr from ``cycle_min_lr`` up to ``cycle_max_lr`` over
``cycle_first_step_size`` steps and back over ``cycle_second_step_size``, optionally in stairs,
while momentum mirrors it between ``cycle_max_mom`` and ``cycle_min_mom``; then a decay phase
shrinks the lr hyperbolically. The arithmetic follows DeepSpeed 0.19.8 expression for expression,
so values are bit-identical to ``deepspeed.runtime.lr_schedules.OneCycle`` (see
``../shared/DEEPSPEED_SEMANTICS.md``), with one deliberate difference: in the decay phase DeepSpeed
multiplies momentum by ``1 + decay_mom_rate * t`` without bound, which pushes Adam's beta1 past
1.0. Here decay-phase momentum is clamped to ``[0, max(cycle_max_mom, MOMENTUM_CEILING)]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from schedulers import _validation as check
from schedulers.schedules.base import Schedule

#: Highest momentum the decay phase may reach (unless ``cycle_max_mom`` is already above it).
#: DeepSpeed lets it grow without bound; at 1.0 SGD and Adam stop forgetting and diverge.
MOMENTUM_CEILING = 0.999


@dataclass(frozen=True)
class OneCycleSchedule(Schedule):
    """1-Cycle lr and momentum for one parameter group, with DeepSpeed's names and defaults.

    Example:
        >>> s = OneCycleSchedule(cycle_min_lr=0.01, cycle_max_lr=0.1, cycle_first_step_size=10)
        >>> round(s.lr(10), 6), round(s.lr(20), 6), s.momentum(10)
        (0.1, 0.01, 0.8)
    """

    cycle_min_lr: float
    cycle_max_lr: float
    decay_lr_rate: float = 0.0
    cycle_first_step_size: float = 2000
    cycle_second_step_size: float | None = None
    cycle_first_stair_count: int = 0
    cycle_second_stair_count: int | None = None
    decay_step_size: float = 0
    cycle_momentum: bool = True
    cycle_min_mom: float = 0.8
    cycle_max_mom: float = 0.9
    decay_mom_rate: float = 0.0

    deepspeed_type = "OneCycle"

    _min_lr: float = field(init=False, repr=False, compare=False)
    _max_lr: float = field(init=False, repr=False, compare=False)
    _s1: float = field(init=False, repr=False, compare=False)
    _s2: float = field(init=False, repr=False, compare=False)
    _total: float = field(init=False, repr=False, compare=False)
    _ratio: float = field(init=False, repr=False, compare=False)
    _n1: int = field(init=False, repr=False, compare=False)
    _n2: int = field(init=False, repr=False, compare=False)
    _min_mom: float = field(init=False, repr=False, compare=False)
    _max_mom: float = field(init=False, repr=False, compare=False)
    _lr_decay_rate: float | None = field(init=False, repr=False, compare=False)
    _mom_decay_rate: float | None = field(init=False, repr=False, compare=False)
    _decay_size: float = field(init=False, repr=False, compare=False)
    _mom_ceiling: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        min_lr = check.real("cycle_min_lr", self.cycle_min_lr, ge=0.0)
        max_lr = check.real("cycle_max_lr", self.cycle_max_lr, ge=0.0)
        check.ordered("cycle_min_lr", min_lr, "cycle_max_lr", max_lr)
        s1 = check.real("cycle_first_step_size", self.cycle_first_step_size, gt=0.0)
        s2 = (
            s1
            if self.cycle_second_step_size is None
            else check.real("cycle_second_step_size", self.cycle_second_step_size, ge=0.0)
        )
        n1 = _stair_count("cycle_first_stair_count", self.cycle_first_stair_count, s1, "first")
        n2 = (
            n1
            if self.cycle_second_stair_count is None
            else _stair_count(
                "cycle_second_stair_count", self.cycle_second_stair_count, s2, "second"
            )
        )
        if self.cycle_second_stair_count is None and s2 > 0 and n1 > s2:
            raise ValueError(
                f"`cycle_second_stair_count` defaults to `cycle_first_stair_count` ({n1}), "
                f"which must be <= cycle_second_step_size ({s2:g}); set it explicitly"
            )
        decay_size = check.real("decay_step_size", self.decay_step_size, ge=0.0)
        lr_rate = check.real("decay_lr_rate", self.decay_lr_rate, ge=0.0)
        check.boolean("cycle_momentum", self.cycle_momentum)
        min_mom = check.real("cycle_min_mom", self.cycle_min_mom, ge=0.0, lt=1.0)
        max_mom = check.real("cycle_max_mom", self.cycle_max_mom, ge=0.0, lt=1.0)
        check.ordered("cycle_min_mom", min_mom, "cycle_max_mom", max_mom)
        mom_rate = check.real("decay_mom_rate", self.decay_mom_rate)

        total = s1 + s2
        put(self, "_min_lr", min_lr)
        put(self, "_max_lr", max_lr)
        put(self, "_s1", s1)
        put(self, "_s2", s2)
        put(self, "_total", total)
        put(self, "_ratio", s1 / total)
        put(self, "_n1", n1)
        put(self, "_n2", n2)
        put(self, "_min_mom", min_mom)
        put(self, "_max_mom", max_mom)
        put(self, "_decay_size", decay_size)
        # DeepSpeed's skip rules: no decay at all when decay_step_size is 0, and each decay is
        # skipped on its own when its rate is 0. None marks a skipped decay.
        no_decay = decay_size == 0.0
        put(self, "_lr_decay_rate", None if no_decay or lr_rate == 0.0 else lr_rate)
        put(self, "_mom_decay_rate", None if no_decay or mom_rate == 0.0 else mom_rate)
        put(self, "_mom_ceiling", max(max_mom, MOMENTUM_CEILING))

    def scale(self, step: int) -> float:
        """Position in the cycle, 0 at ``cycle_min_lr`` and 1 at ``cycle_max_lr``.

        Only meaningful in the cycle phase (``step <= cycle length``).
        """
        total = self._total
        position = 1.0 + step / total
        x = position - math.floor(position)
        if x <= self._ratio:
            factor = x / self._ratio
            stairs = self._n1
        else:
            factor = (x - 1.0) / (self._ratio - 1.0)
            stairs = self._n2
        if stairs > 0:
            # Quantise from the integer position, not from `factor`: at a half-cycle boundary
            # the float factor can sit 1e-16 under an exact stair and floor a whole stair down.
            in_cycle = step % total
            if in_cycle <= self._s1:
                level = in_cycle * stairs / self._s1
            else:
                level = (total - in_cycle) * stairs / self._s2
            factor = math.floor(level) / stairs
        return factor

    def in_decay(self, step: int) -> bool:
        """Whether ``step`` lies in the decay phase (after the cycle)."""
        return step - 1 >= self._total

    def _lr(self, step: int) -> float:
        return self._values(step)[0]

    def _values(self, step: int) -> tuple[float, float | None]:
        if step - 1 < self._total:
            factor = self.scale(step)
            lr = self._min_lr + (self._max_lr - self._min_lr) * factor
            if self.cycle_momentum:
                return lr, self._max_mom - (self._max_mom - self._min_mom) * factor
            return lr, None
        decay_steps = step - self._total
        lr = self._min_lr
        if self._lr_decay_rate is not None:
            lr = lr / (1 + self._lr_decay_rate * (decay_steps / self._decay_size))
        if not self.cycle_momentum:
            return lr, None
        mom = self._max_mom
        if self._mom_decay_rate is not None:
            mom = mom * (1 + self._mom_decay_rate * (decay_steps / self._decay_size))
            mom = min(max(mom, 0.0), self._mom_ceiling)
        return lr, mom

    @property
    def horizon(self) -> int:
        """The cycle plus half its length again of decay."""
        return math.ceil(self._total * 1.5) + 1

    def milestones(self) -> dict[str, float]:
        """The peak and the end of the cycle."""
        return {"peak": self._s1, "cycle end": self._total}

    def phase(self, step: int) -> str:
        """``rise``, ``fall`` or ``decay``."""
        if step <= self._s1:
            return "rise"
        return "decay" if self.in_decay(step) else "fall"


def _stair_count(name: str, value: object, half: float, which: str) -> int:
    count = check.integer(name, value)
    if count < 0:
        raise ValueError(
            f"`{name}` must be >= 0 (0 means a continuous ramp; DeepSpeed's -1 also meant "
            f"continuous), got {count!r}"
        )
    if count > half:
        raise ValueError(
            f"`{name}` must be <= cycle_{which}_step_size ({half:g}) so each stair lasts at "
            f"least one step, got {count!r}"
        )
    return count
