"""DeepSpeed's learning-rate schedules, exact, as PyTorch schedulers.

Two layers: closed-form schedules (:mod:`schedulers.schedules`, plain Python, a pure function of
the step) and torch adapters with DeepSpeed's constructors (:class:`OneCycle`,
:class:`LRRangeTest`, :class:`WarmupLR`, :class:`WarmupDecayLR`, :class:`WarmupCosineLR`), which
are ``torch.optim.lr_scheduler.LRScheduler`` subclasses stepped once per batch.

Example:
    >>> import torch, schedulers
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    >>> block = {"type": "OneCycle", "params": {"cycle_min_lr": 0.01, "cycle_max_lr": 0.1}}
    >>> sched = schedulers.from_config(opt, block)
    >>> sched.get_last_lr()
    [0.01]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from schedulers.config import ALIASES, normalize_block, with_defaults
from schedulers.schedules import (
    MOMENTUM_CEILING,
    ExponentialRangeTestSchedule,
    LRRangeTestSchedule,
    OneCycleSchedule,
    Schedule,
    WarmupCosineLRSchedule,
    WarmupDecayLRSchedule,
    WarmupLRSchedule,
)

if TYPE_CHECKING:
    from schedulers.adapter import ScheduledLR
    from schedulers.config import from_config
    from schedulers.deepspeed_api import (
        SCHEDULER_TYPES,
        DeepSpeedScheduler,
        LRRangeTest,
        OneCycle,
        WarmupCosineLR,
        WarmupDecayLR,
        WarmupLR,
    )

#: The torch-backed names, imported on first use: the schedules and the config helpers above
#: need no torch, so reading a config or exporting a block does not load it.
_LAZY = {
    "ScheduledLR": "schedulers.adapter",
    "from_config": "schedulers.config",
    **{
        name: "schedulers.deepspeed_api"
        for name in (
            "SCHEDULER_TYPES",
            "DeepSpeedScheduler",
            "LRRangeTest",
            "OneCycle",
            "WarmupCosineLR",
            "WarmupDecayLR",
            "WarmupLR",
        )
    },
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'schedulers' has no attribute {name!r}")


__all__ = [
    "ALIASES",
    "MOMENTUM_CEILING",
    "SCHEDULER_TYPES",
    "DeepSpeedScheduler",
    "ExponentialRangeTestSchedule",
    "LRRangeTest",
    "LRRangeTestSchedule",
    "OneCycle",
    "OneCycleSchedule",
    "Schedule",
    "ScheduledLR",
    "WarmupCosineLR",
    "WarmupCosineLRSchedule",
    "WarmupDecayLR",
    "WarmupDecayLRSchedule",
    "WarmupLR",
    "WarmupLRSchedule",
    "from_config",
    "normalize_block",
    "with_defaults",
]
