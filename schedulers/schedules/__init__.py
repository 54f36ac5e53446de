"""Closed-form schedules: plain-Python functions of the step, no torch.

Example:
    >>> from schedulers.schedules import OneCycleSchedule
    >>> s = OneCycleSchedule(cycle_min_lr=0.001, cycle_max_lr=0.01, cycle_first_step_size=4)
    >>> round(s.lr(2), 6)
    0.0055
"""

from __future__ import annotations

from schedulers.schedules.base import Schedule
from schedulers.schedules.exp_range_test import ExponentialRangeTestSchedule
from schedulers.schedules.lr_range_test import LRRangeTestSchedule
from schedulers.schedules.one_cycle import MOMENTUM_CEILING, OneCycleSchedule
from schedulers.schedules.warmup import WarmupDecayLRSchedule, WarmupLRSchedule
from schedulers.schedules.warmup_cosine import WarmupCosineLRSchedule

__all__ = [
    "MOMENTUM_CEILING",
    "ExponentialRangeTestSchedule",
    "LRRangeTestSchedule",
    "OneCycleSchedule",
    "Schedule",
    "WarmupCosineLRSchedule",
    "WarmupDecayLRSchedule",
    "WarmupLRSchedule",
]
