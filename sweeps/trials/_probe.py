"""A run under the LR range test's schedule instead of a trial's OneCycle: what runners share.

The range test (``sweeps.range_test``) builds a :class:`Probe`; a trial runner drives its own
loop with it. For a user's function, the probe's scheduler is what ``ctx.scheduler`` returns,
and :class:`RangeTestDone` from its ``step()`` ends the function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from torch.optim import Optimizer

from sweeps.trials._rules import set_momentum


class Scheduler(Protocol):
    """What the range test's lr schedule offers a loop: one ``step()`` per update."""

    def step(self) -> None:
        """Move to the next update's lr."""


@dataclass
class Probe:
    """The LR range test as a runner sees it.

    ``scheduler(optimizer)`` gives the schedule (momentum already held at ``momentum`` by the
    runner); after each update the runner calls ``on_update(lr, loss)`` with the lr that update
    applied and its loss, and stops when it returns True or after ``steps`` updates.
    """

    scheduler: Callable[[Optimizer], Scheduler]
    momentum: float | None
    steps: int
    on_update: Callable[[float, float], bool]


class RangeTestDone(BaseException):
    """Raised from the range test's ``scheduler.step()`` to end a user's function.

    A ``BaseException``, so that a loop's ``except Exception`` does not swallow it.
    """


class LossSource(Protocol):
    """Where the probe scheduler reads the loss the user's loop logged for the update."""

    def take_loss(self) -> float | None:
        """The loss logged since the last step, or None."""
        ...


class ProbeScheduler:
    """The range test's schedule for a user's loop: each step reports lr and loss, may stop."""

    def __init__(self, probe: Probe, optimizer: Optimizer, losses: LossSource) -> None:
        if probe.momentum is not None:
            set_momentum(optimizer, probe.momentum)
        self.probe = probe
        self.optimizer = optimizer
        self.losses = losses
        self.updates = 0
        self.inner = probe.scheduler(optimizer)

    def step(self, batch_iteration: int | None = None) -> None:
        """Hand the update just made to the test, then move the lr on (or end the function)."""
        loss = self.losses.take_loss()
        if loss is None:
            raise ValueError(
                "the range test needs ctx.log_loss(loss) before each scheduler.step() "
                "in the entrypoint function"
            )
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.inner.step()
        self.updates += 1
        if self.probe.on_update(lr, loss) or self.updates >= self.probe.steps:
            raise RangeTestDone

    def get_last_lr(self) -> list[float]:
        """The lr of each parameter group now (as torch schedulers offer)."""
        return [float(group["lr"]) for group in self.optimizer.param_groups]
