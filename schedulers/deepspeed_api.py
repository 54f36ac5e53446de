"""DeepSpeed's five scheduler classes, constructed exactly as DeepSpeed constructs them.

``OneCycle(optimizer, cycle_min_lr, cycle_max_lr, ..., last_batch_iteration=-1)`` and its
siblings take DeepSpeed's keyword names and defaults, so a JSON ``scheduler`` block moves between
DeepSpeed and this project unchanged. Each class validates its arguments, broadcasts scalars or
checks per-group lists, builds one closed-form schedule per param group, and hands them to
:class:`~schedulers.adapter.ScheduledLR`. ``to_config()`` gives the DeepSpeed block back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.optim import Optimizer

from schedulers.adapter import (
    ScheduledLR,
    base_lrs,
    momentum_key,
    unwrap_optimizer,
    warn_momentum_unsupported,
)
from schedulers.groups import PerGroup, group_schedules
from schedulers.schedules import Schedule


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


class DeepSpeedScheduler(ScheduledLR):
    """A :class:`ScheduledLR` built from DeepSpeed parameters, which it can give back."""

    deepspeed_type = ""

    def _setup(
        self,
        optimizer: object,
        params: dict[str, Any],
        schedules: Sequence[Schedule],
        last_batch_iteration: int,
    ) -> None:
        self._params = {key: _jsonable(value) for key, value in params.items()}
        super().__init__(optimizer, schedules, last_batch_iteration)

    def _setup_groups(
        self, optimizer: object, params: dict[str, Any], last_batch_iteration: int
    ) -> None:
        """One schedule per param group from DeepSpeed's keywords (:mod:`schedulers.groups`)."""
        torch_optimizer = unwrap_optimizer(optimizer)
        schedules = group_schedules(self.deepspeed_type, params, base_lrs(torch_optimizer))
        self._setup(torch_optimizer, params, schedules, last_batch_iteration)

    def to_config(self) -> dict[str, Any]:
        """DeepSpeed's ``{"type": ..., "params": {...}}`` block, every key spelled out.

        Example:
            >>> import torch
            >>> opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
            >>> OneCycle(opt, 0.001, 0.01).to_config()["params"]["cycle_max_lr"]
            0.01
        """
        return {"type": self.deepspeed_type, "params": dict(self._params)}


class OneCycle(DeepSpeedScheduler):
    """DeepSpeed's 1-Cycle scheduler; see :class:`~schedulers.schedules.OneCycleSchedule`.

    Differences from DeepSpeed, all deliberate: SGD's ``momentum`` is cycled (DeepSpeed only
    cycles optimizers with ``betas``); Adam's ``betas[1]`` keeps its configured value (DeepSpeed
    forces 0.99); momentum right after construction is the schedule's step-0 value
    (``cycle_max_mom``; DeepSpeed writes ``cycle_min_mom``); decay-phase momentum stays below 1;
    ``get_last_lr()`` works before the first ``step()``.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
        >>> sched = OneCycle(opt, 0.01, 0.1, cycle_first_step_size=10, cycle_min_mom=0.85)
        >>> for _ in range(10):
        ...     sched.step()
        >>> round(opt.param_groups[0]["lr"], 6), opt.param_groups[0]["momentum"]
        (0.1, 0.85)
    """

    deepspeed_type = "OneCycle"

    def __init__(
        self,
        optimizer: Optimizer,
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
        last_batch_iteration: int = -1,
    ) -> None:
        params = {
            "cycle_min_lr": cycle_min_lr,
            "cycle_max_lr": cycle_max_lr,
            "decay_lr_rate": decay_lr_rate,
            "cycle_first_step_size": cycle_first_step_size,
            "cycle_second_step_size": cycle_second_step_size,
            "cycle_first_stair_count": cycle_first_stair_count,
            "cycle_second_stair_count": cycle_second_stair_count,
            "decay_step_size": decay_step_size,
            "cycle_momentum": cycle_momentum,
            "cycle_min_mom": cycle_min_mom,
            "cycle_max_mom": cycle_max_mom,
            "decay_mom_rate": decay_mom_rate,
        }
        self._setup_groups(optimizer, params, last_batch_iteration)
        if cycle_momentum and momentum_key(self.optimizer) is None:
            warn_momentum_unsupported(self.optimizer)


class LRRangeTest(DeepSpeedScheduler):
    """DeepSpeed's LR range test: linear (optionally staircase) lr growth; momentum untouched.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        >>> LRRangeTest(opt, lr_range_test_min_lr=1e-3, lr_range_test_step_size=10).get_last_lr()
        [0.001]
    """

    deepspeed_type = "LRRangeTest"

    def __init__(
        self,
        optimizer: Optimizer,
        lr_range_test_min_lr: PerGroup = 1e-3,
        lr_range_test_step_size: int = 2000,
        lr_range_test_step_rate: float = 1.0,
        lr_range_test_staircase: bool = False,
        last_batch_iteration: int = -1,
    ) -> None:
        params = {
            "lr_range_test_min_lr": lr_range_test_min_lr,
            "lr_range_test_step_size": lr_range_test_step_size,
            "lr_range_test_step_rate": lr_range_test_step_rate,
            "lr_range_test_staircase": lr_range_test_staircase,
        }
        self._setup_groups(optimizer, params, last_batch_iteration)


class WarmupLR(DeepSpeedScheduler):
    """DeepSpeed's warm-up then constant; ``warmup_max_lr=None`` means each group's own lr.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        >>> sched = WarmupLR(opt, warmup_num_steps=10, warmup_type="linear")
        >>> sched.step(100)
        >>> sched.get_last_lr()
        [0.1]
    """

    deepspeed_type = "WarmupLR"

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_min_lr: PerGroup = 0.0,
        warmup_max_lr: PerGroup | None = None,
        warmup_num_steps: int = 1000,
        warmup_type: str = "log",
        last_batch_iteration: int = -1,
    ) -> None:
        params = {
            "warmup_min_lr": warmup_min_lr,
            "warmup_max_lr": warmup_max_lr,
            "warmup_num_steps": warmup_num_steps,
            "warmup_type": warmup_type,
        }
        self._setup_groups(optimizer, params, last_batch_iteration)


class WarmupDecayLR(DeepSpeedScheduler):
    """DeepSpeed's warm-up then linear decay to ``warmup_min_lr`` at ``total_num_steps``.

    As in DeepSpeed, ``warmup_max_lr`` defaults to 0.001 here, not to the optimizer's lr.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        >>> sched = WarmupDecayLR(opt, total_num_steps=100, warmup_num_steps=10)
        >>> sched.step(100)
        >>> sched.get_last_lr()
        [0.0]
    """

    deepspeed_type = "WarmupDecayLR"

    def __init__(
        self,
        optimizer: Optimizer,
        total_num_steps: int,
        warmup_min_lr: PerGroup = 0.0,
        warmup_max_lr: PerGroup = 0.001,
        warmup_num_steps: int = 1000,
        warmup_type: str = "log",
        last_batch_iteration: int = -1,
    ) -> None:
        params = {
            "total_num_steps": total_num_steps,
            "warmup_min_lr": warmup_min_lr,
            "warmup_max_lr": warmup_max_lr,
            "warmup_num_steps": warmup_num_steps,
            "warmup_type": warmup_type,
        }
        self._setup_groups(optimizer, params, last_batch_iteration)


class WarmupCosineLR(DeepSpeedScheduler):
    """DeepSpeed's warm-up then cosine decay, as ratios of each group's lr at construction.

    On resume the ratio applies to the group's ``initial_lr`` (its lr before scheduling), not
    to the already-scaled lr a restored optimizer holds, so the lr is never scaled twice.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        >>> sched = WarmupCosineLR(opt, total_num_steps=100, warmup_num_steps=10)
        >>> sched.get_last_lr()
        [0.0]
    """

    deepspeed_type = "WarmupCosineLR"

    def __init__(
        self,
        optimizer: Optimizer,
        total_num_steps: int,
        warmup_min_ratio: float = 0.0,
        warmup_num_steps: int = 1000,
        cos_min_ratio: float = 0.0001,
        warmup_type: str = "log",
        last_batch_iteration: int = -1,
    ) -> None:
        params = {
            "total_num_steps": total_num_steps,
            "warmup_min_ratio": warmup_min_ratio,
            "warmup_num_steps": warmup_num_steps,
            "cos_min_ratio": cos_min_ratio,
            "warmup_type": warmup_type,
        }
        self._setup_groups(optimizer, params, last_batch_iteration)


#: DeepSpeed ``type`` name to class.
SCHEDULER_TYPES: dict[str, type[DeepSpeedScheduler]] = {
    cls.deepspeed_type: cls
    for cls in (OneCycle, LRRangeTest, WarmupLR, WarmupDecayLR, WarmupCosineLR)
}
