"""DeepSpeed's scheduler keywords, and the schedule each param group gets from them, without torch.

One function per DeepSpeed ``type`` takes exactly its constructor's keywords (names and
defaults; ``last_batch_iteration`` aside) plus each group's lr before scheduling, and returns
one closed-form schedule per group: scalars broadcast, per-group lists checked, the lr-relative
defaults (``WarmupLR``'s ``warmup_max_lr=None``, ``WarmupCosineLR``'s ratios) resolved against
the groups' lrs. The torch classes in :mod:`schedulers.deepspeed_api` build their schedules
here, and ``onecycle schedule`` computes what they would apply from the same functions.

Example:
    >>> [s.lr(0) for s in one_cycle([0.5, 0.5], cycle_min_lr=[0.1, 0.2], cycle_max_lr=1.0)]
    [0.1, 0.2]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from schedulers import _validation as check
from schedulers.schedules import (
    LRRangeTestSchedule,
    OneCycleSchedule,
    Schedule,
    WarmupCosineLRSchedule,
    WarmupDecayLRSchedule,
    WarmupLRSchedule,
)

#: A scalar for every param group, or one value per group.
PerGroup = float | Sequence[float]


def one_cycle(
    base_lrs: Sequence[float],
    cycle_min_lr: PerGroup,
    cycle_max_lr: PerGroup,
    decay_lr_rate: float = 0.0,
    cycle_first_step_size: float = 2000,
    cycle_second_step_size: float | None = None,
    cycle_first_stair_count: int = 0,
    cycle_second_stair_count: int | None = None,
    decay_step_size: float = 0,
    cycle_momentum: bool = True,
    cycle_min_mom: PerGroup = 0.8,
    cycle_max_mom: PerGroup = 0.9,
    decay_mom_rate: float = 0.0,
) -> list[Schedule]:
    """``OneCycle``: bounds of lr and momentum per group, the cycle's shape shared."""
    groups = len(base_lrs)
    per = {
        name: check.per_group(name, value, groups)
        for name, value in (
            ("cycle_min_lr", cycle_min_lr),
            ("cycle_max_lr", cycle_max_lr),
            ("cycle_min_mom", cycle_min_mom),
            ("cycle_max_mom", cycle_max_mom),
        )
    }
    return [
        OneCycleSchedule(
            cycle_min_lr=per["cycle_min_lr"][g],
            cycle_max_lr=per["cycle_max_lr"][g],
            decay_lr_rate=decay_lr_rate,
            cycle_first_step_size=cycle_first_step_size,
            cycle_second_step_size=cycle_second_step_size,
            cycle_first_stair_count=cycle_first_stair_count,
            cycle_second_stair_count=cycle_second_stair_count,
            decay_step_size=decay_step_size,
            cycle_momentum=cycle_momentum,
            cycle_min_mom=per["cycle_min_mom"][g],
            cycle_max_mom=per["cycle_max_mom"][g],
            decay_mom_rate=decay_mom_rate,
        )
        for g in range(groups)
    ]


def lr_range_test(
    base_lrs: Sequence[float],
    lr_range_test_min_lr: PerGroup = 1e-3,
    lr_range_test_step_size: int = 2000,
    lr_range_test_step_rate: float = 1.0,
    lr_range_test_staircase: bool = False,
) -> list[Schedule]:
    """``LRRangeTest``: the starting lr per group, the growth shared."""
    mins = check.per_group("lr_range_test_min_lr", lr_range_test_min_lr, len(base_lrs))
    return [
        LRRangeTestSchedule(
            lr_range_test_min_lr=low,
            lr_range_test_step_size=lr_range_test_step_size,
            lr_range_test_step_rate=lr_range_test_step_rate,
            lr_range_test_staircase=lr_range_test_staircase,
        )
        for low in mins
    ]


def _warmups(
    schedule_type: type[WarmupLRSchedule],
    base_lrs: Sequence[float],
    warmup_min_lr: PerGroup,
    warmup_max_lr: PerGroup | None,
    **shared: Any,
) -> list[Schedule]:
    """Warm-up schedules: bounds per group (the top defaulting to each group's lr)."""
    groups = len(base_lrs)
    lows = check.per_group("warmup_min_lr", warmup_min_lr, groups)
    highs = (
        list(base_lrs)
        if warmup_max_lr is None
        else check.per_group("warmup_max_lr", warmup_max_lr, groups)
    )
    return [
        schedule_type(warmup_min_lr=low, warmup_max_lr=top, **shared)
        for low, top in zip(lows, highs, strict=True)
    ]


def warmup_lr(
    base_lrs: Sequence[float],
    warmup_min_lr: PerGroup = 0.0,
    warmup_max_lr: PerGroup | None = None,
    warmup_num_steps: int = 1000,
    warmup_type: str = "log",
) -> list[Schedule]:
    """``WarmupLR``: warm up, then hold; ``warmup_max_lr=None`` is each group's own lr."""
    return _warmups(
        WarmupLRSchedule,
        base_lrs,
        warmup_min_lr,
        warmup_max_lr,
        warmup_num_steps=warmup_num_steps,
        warmup_type=warmup_type,
    )


def warmup_decay_lr(
    base_lrs: Sequence[float],
    total_num_steps: int,
    warmup_min_lr: PerGroup = 0.0,
    warmup_max_lr: PerGroup = 0.001,
    warmup_num_steps: int = 1000,
    warmup_type: str = "log",
) -> list[Schedule]:
    """``WarmupDecayLR``: warm up, then decay linearly to ``warmup_min_lr``."""
    return _warmups(
        WarmupDecayLRSchedule,
        base_lrs,
        warmup_min_lr,
        warmup_max_lr,
        total_num_steps=total_num_steps,
        warmup_num_steps=warmup_num_steps,
        warmup_type=warmup_type,
    )


def warmup_cosine_lr(
    base_lrs: Sequence[float],
    total_num_steps: int,
    warmup_min_ratio: float = 0.0,
    warmup_num_steps: int = 1000,
    cos_min_ratio: float = 0.0001,
    warmup_type: str = "log",
) -> list[Schedule]:
    """``WarmupCosineLR``: ratios of each group's lr, warm-up then cosine decay."""
    return [
        WarmupCosineLRSchedule(
            total_num_steps=total_num_steps,
            warmup_min_ratio=warmup_min_ratio,
            warmup_num_steps=warmup_num_steps,
            cos_min_ratio=cos_min_ratio,
            warmup_type=warmup_type,
            base_lr=lr,
        )
        for lr in base_lrs
    ]


#: DeepSpeed ``type`` name to the function that takes its keywords.
GROUP_SCHEDULES: dict[str, Callable[..., list[Schedule]]] = {
    "OneCycle": one_cycle,
    "LRRangeTest": lr_range_test,
    "WarmupLR": warmup_lr,
    "WarmupDecayLR": warmup_decay_lr,
    "WarmupCosineLR": warmup_cosine_lr,
}


def group_schedules(
    kind: str, params: Mapping[str, Any], base_lrs: Sequence[float]
) -> list[Schedule]:
    """The per-group schedules a validated block (:func:`schedulers.normalize_block`) gives.

    Example:
        >>> round(group_schedules("WarmupLR", {"warmup_num_steps": 10}, [0.1])[0].lr(10), 6)
        0.1
    """
    return GROUP_SCHEDULES[kind](list(base_lrs), **params)
