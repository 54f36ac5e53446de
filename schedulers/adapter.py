"""Apply any closed-form schedule to a torch optimizer, once per batch.

:class:`ScheduledLR` is a ``torch.optim.lr_scheduler.LRScheduler`` whose only state is the step
counter, so ``state_dict()`` is DeepSpeed's ``{"last_batch_iteration": n}`` and resuming is exact.
It writes lr and momentum in :meth:`step` (never in a getter), and it knows where each optimizer
family keeps momentum: SGD-style ``momentum``, or Adam-style ``betas[0]`` with ``betas[1]`` left
as the user configured it. DeepSpeed only cycles Adam's beta1 and overwrites beta2 with 0.99.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from schedulers import _validation as check
from schedulers.schedules.base import Schedule


def unwrap_optimizer(optimizer: object) -> Optimizer:
    """Return the torch optimizer, looking through a wrapper's ``.optimizer`` as DeepSpeed does."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    inner = getattr(optimizer, "optimizer", None)
    if isinstance(inner, Optimizer):
        return inner
    raise TypeError(f"`optimizer` must be a torch.optim.Optimizer, got {type(optimizer).__name__}")


def momentum_key(optimizer: Optimizer) -> str | None:
    """Where this optimizer keeps momentum: ``"betas"``, ``"momentum"``, or None."""
    if "betas" in optimizer.defaults:
        return "betas"
    if "momentum" in optimizer.defaults:
        return "momentum"
    return None


def base_lrs(optimizer: Optimizer) -> list[float]:
    """Each group's lr before any scheduler touched it (``initial_lr`` when torch recorded one).

    Using ``initial_lr`` makes a resumed ``WarmupCosineLR`` scale the original lr rather than
    the already-scaled one a restored optimizer holds (a DeepSpeed resume pitfall).
    """
    lrs = []
    for group in optimizer.param_groups:
        value = group.get("initial_lr", group["lr"])
        lrs.append(float(value.item()) if isinstance(value, Tensor) else float(value))
    return lrs


class ScheduledLR(LRScheduler):
    """Drive an optimizer's param groups from one :class:`Schedule` per group.

    Args:
        optimizer: the torch optimizer (or a wrapper with an ``.optimizer`` attribute).
        schedules: one schedule per param group.
        last_batch_iteration: DeepSpeed's resume index: the index of the last batch trained,
            -1 for a fresh start. The optimizer gets the schedule's value for the next batch at
            once (DeepSpeed leaves it untouched until the first ``step()``).

    Example:
        >>> import torch
        >>> from schedulers.schedules import OneCycleSchedule
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.9)
        >>> sched = ScheduledLR(opt, [OneCycleSchedule(0.01, 0.1, cycle_first_step_size=10)])
        >>> sched.get_last_lr(), opt.param_groups[0]["momentum"]
        ([0.01], 0.9)
    """

    def __init__(
        self,
        optimizer: object,
        schedules: Sequence[Schedule],
        last_batch_iteration: int = -1,
    ) -> None:
        torch_optimizer = unwrap_optimizer(optimizer)
        check.integer("last_batch_iteration", last_batch_iteration, ge=-1)
        if len(schedules) != len(torch_optimizer.param_groups):
            raise ValueError(
                f"`schedules` must have one schedule per param group "
                f"({len(torch_optimizer.param_groups)}), got {len(schedules)}"
            )
        self._schedules = list(schedules)
        self._momentum_key = momentum_key(torch_optimizer)
        self._last_momentum: list[float | None] = [None] * len(schedules)
        # LRScheduler.__init__ records initial_lr, hooks optimizer.step and calls self.step()
        # once, which moves the counter from -1 to step 0 and writes the step-0 values.
        super().__init__(torch_optimizer, last_epoch=-1)
        if last_batch_iteration != -1:
            self.last_epoch = last_batch_iteration + 1
            self._apply()

    @property
    def last_batch_iteration(self) -> int:
        """DeepSpeed's counter: the index of the last batch (``-1`` right after construction)."""
        return self.last_epoch - 1

    @property
    def schedules(self) -> list[Schedule]:
        """The per-group schedules (read-only view)."""
        return list(self._schedules)

    def step(self, batch_iteration: int | None = None) -> None:
        """Advance one batch, or jump so that ``last_batch_iteration == batch_iteration``."""
        if batch_iteration is None:
            self.last_epoch += 1
        else:
            check.integer("batch_iteration", batch_iteration, ge=-1)
            self.last_epoch = batch_iteration + 1
        self._step_count += 1
        self._apply()

    def _apply(self) -> None:
        # The hot path: one call per optimizer update. Kept lean (see bench_scheduler.py).
        step = self.last_epoch
        key = self._momentum_key
        last_lr: list[float | Tensor] = []
        last_momentum: list[float | None] = []
        for group, schedule in zip(self.optimizer.param_groups, self._schedules, strict=True):
            lr, momentum = schedule._values(step)
            current = group["lr"]
            if type(current) is float or not isinstance(current, Tensor):
                group["lr"] = lr
            else:
                current.fill_(lr)
            last_lr.append(lr)
            if momentum is None or key is None:
                last_momentum.append(None)
                continue
            if key == "betas":
                group["betas"] = (momentum, group["betas"][1])
            else:
                group["momentum"] = momentum
            last_momentum.append(momentum)
        self._last_lr = last_lr
        self._last_momentum = last_momentum

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """Recompute the current step's lrs (pure; writes nothing)."""
        return [schedule._values(self.last_epoch)[0] for schedule in self._schedules]

    def get_mom(self) -> list[float] | None:
        """Current step's momentum per group, or None when momentum is not scheduled."""
        if self._momentum_key is None:
            return None
        moms = [schedule._values(self.last_epoch)[1] for schedule in self._schedules]
        if any(m is None for m in moms):
            return None
        return [float(m) for m in moms if m is not None]

    def get_last_momentum(self) -> list[float | None]:
        """The momentum written at the last step, per group (None where untouched)."""
        return list(self._last_momentum)

    def state_dict(self) -> dict[str, Any]:
        """DeepSpeed's format: the step counter is the whole state."""
        return {"last_batch_iteration": self.last_batch_iteration}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore the counter and write that step's values into the optimizer at once."""
        if "last_batch_iteration" not in state_dict:
            raise ValueError(
                "missing key `last_batch_iteration` in scheduler state_dict, "
                f"got keys {sorted(state_dict)}"
            )
        index = check.integer("last_batch_iteration", state_dict["last_batch_iteration"], ge=-1)
        self.last_epoch = index + 1
        self._apply()


def warn_momentum_unsupported(optimizer: Optimizer) -> None:
    """Say once that an optimizer without momentum or betas keeps its momentum unscheduled."""
    warnings.warn(
        f"cycle_momentum has no effect: optimizer {type(optimizer).__name__} has neither "
        "`momentum` nor `betas` in its defaults",
        UserWarning,
        stacklevel=3,
    )
