"""DeepSpeed's ``WarmupCosineLR``: warm up as a ratio of the optimizer's lr, then cosine decay.

Unlike the other schedules it has no lr keys: it scales ``base_lr`` (DeepSpeed's ``org_lr``, the
optimizer's lr when the scheduler is built) by a ratio that rises from ``warmup_min_ratio`` to 1
and then follows half a cosine down to ``cos_min_ratio``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from schedulers import _validation as check
from schedulers.schedules.base import Schedule
from schedulers.schedules.warmup import check_warmup, warmup_fraction


@dataclass(frozen=True)
class WarmupCosineLRSchedule(Schedule):
    """``lr = base_lr * ratio(step)``.

    Example:
        >>> s = WarmupCosineLRSchedule(total_num_steps=100, warmup_num_steps=10, base_lr=0.1)
        >>> s.lr(0), round(s.lr(10), 8), round(s.lr(100), 8)
        (0.0, 0.1, 1e-05)
    """

    total_num_steps: int
    warmup_min_ratio: float = 0.0
    warmup_num_steps: int = 1000
    cos_min_ratio: float = 0.0001
    warmup_type: str = "log"
    base_lr: float = 1.0

    deepspeed_type = "WarmupCosineLR"

    _n: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check.integer("total_num_steps", self.total_num_steps, gt=0)
        check.real("warmup_min_ratio", self.warmup_min_ratio, ge=0.0)
        check.real("cos_min_ratio", self.cos_min_ratio, ge=0.0)
        check.real("base_lr", self.base_lr, ge=0.0)
        object.__setattr__(self, "_n", check_warmup(self.warmup_num_steps, self.warmup_type))

    def ratio(self, step: int) -> float:
        """Multiplier of ``base_lr`` after ``step`` steps."""
        last_batch_iteration = step - 1
        if last_batch_iteration < 0:
            return 0.0
        if last_batch_iteration < self._n:
            rise = warmup_fraction(last_batch_iteration, self._n, self.warmup_type)
            return self.warmup_min_ratio + rise * (1.0 - self.warmup_min_ratio)
        done = last_batch_iteration - self._n + 1
        progress = min(1.0, done / max(1, self.total_num_steps - self._n))
        half_cosine = (1 + math.cos(math.pi * progress)) / 2
        return max(0.0, self.cos_min_ratio + (1.0 - self.cos_min_ratio) * half_cosine)

    def _lr(self, step: int) -> float:
        return self.base_lr * self.ratio(step)

    @property
    def horizon(self) -> int:
        """The whole run and a tenth more."""
        return max(self.total_num_steps, self._n) * 11 // 10 + 2

    def milestones(self) -> dict[str, float]:
        """The end of the warm-up and of the cosine."""
        return {"warm-up end": float(self._n), "cosine end": float(self.total_num_steps)}

    def phase(self, step: int) -> str:
        """``warm-up``, ``cosine`` or ``floor``."""
        if step <= self._n:
            return "warm-up"
        return "cosine" if step <= self.total_num_steps else "floor"
