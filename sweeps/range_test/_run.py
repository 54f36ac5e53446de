"""Run an LR range test on a workload: the lr grows every update until the loss diverges.

The trial runner drives it (:class:`sweeps.trials.Probe`): a task's model, optimizer and
batches are the sweep's own (same seed, same data order); a user's function gets the test's
schedule from ``ctx.scheduler``. The momentum is held at the value the 1-Cycle will use at
its peak lr (``cycle_min_mom``): the stability edge that matters is the one at that momentum.
The loop knows nothing of MLflow; a ``on_step(step, lr, loss)`` callback sees every update.
Reading the result is :func:`sweeps.range_test._rule.suggest`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from torch.optim import Optimizer

import schedulers
from schedulers.adapter import ScheduledLR
from sweeps.errors import RangeTestFailed, SweepsError
from sweeps.range_test._rule import DIVERGENCE_FACTOR, DivergenceWatch
from sweeps.task import Task
from sweeps.trials import OptimizerName, Probe, TrainSettings, TrialRunner, as_runner

Mode = Literal["exponential", "linear"]
StepCallback = Callable[[int, float, float], None]
STAIRS = 20


@dataclass(frozen=True)
class RangeTestSettings:
    """How to run a range test (the CLI's flags; a sweep file's ``range_test`` section).

    ``mode="linear"`` is DeepSpeed's ``LRRangeTest`` with its step size and rate chosen so the
    lr reaches ``max_lr`` after ``steps`` updates; ``exponential`` spends as many steps in each
    decade. ``staircase`` holds each lr for ``steps / 20`` updates (DeepSpeed's staircase).
    """

    min_lr: float = 1e-5
    max_lr: float = 10.0
    steps: int = 300
    mode: Mode = "exponential"
    staircase: bool = False
    momentum: float | None = None
    divergence_factor: float = DIVERGENCE_FACTOR

    def __post_init__(self) -> None:
        if not (self.min_lr > 0 and math.isfinite(self.min_lr)):
            raise ValueError(f"`min_lr` must be > 0, got {self.min_lr}")
        if not (self.max_lr > self.min_lr and math.isfinite(self.max_lr)):
            raise ValueError(f"`max_lr` must be > `min_lr` ({self.min_lr}), got {self.max_lr}")
        if self.steps < 10:
            raise ValueError(f"`steps` must be >= 10, got {self.steps}")
        if self.mode not in ("exponential", "linear"):
            raise ValueError(f"`mode` must be 'exponential' or 'linear', got {self.mode!r}")
        if self.momentum is not None and not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"`momentum` must be in [0, 1), got {self.momentum}")
        if not self.divergence_factor > 1.0:
            raise ValueError(f"`divergence_factor` must be > 1, got {self.divergence_factor}")

    @property
    def stair_size(self) -> int:
        """Updates per stair (1 without ``staircase``)."""
        return max(1, self.steps // STAIRS) if self.staircase else 1

    def scheduler(self, optimizer: Optimizer) -> ScheduledLR:
        """The lr schedule of this test on ``optimizer`` (momentum left alone)."""
        if self.mode == "exponential":
            schedule = schedulers.ExponentialRangeTestSchedule(
                min_lr=self.min_lr,
                max_lr=self.max_lr,
                num_steps=self.steps,
                stair_size=self.stair_size,
            )
            return ScheduledLR(optimizer, [schedule] * len(optimizer.param_groups))
        size = self.stair_size if self.staircase else self.steps
        rate = (self.max_lr / self.min_lr - 1.0) * size / self.steps
        return schedulers.LRRangeTest(
            optimizer,
            lr_range_test_min_lr=self.min_lr,
            lr_range_test_step_size=size,
            lr_range_test_step_rate=rate,
            lr_range_test_staircase=self.staircase,
        )

    def as_params(self) -> dict[str, Any]:
        """The settings as MLflow params."""
        return {
            "range_test.min_lr": self.min_lr,
            "range_test.max_lr": self.max_lr,
            "range_test.steps": self.steps,
            "range_test.mode": self.mode,
            "range_test.staircase": self.staircase,
            "range_test.momentum": self.momentum,
        }


@dataclass
class RangeTestTrace:
    """What the loop saw: the applied lr and the loss of every update, in order."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    stopped_early: bool = False
    wall_time_s: float = 0.0


def run_range_test(
    workload: Task | TrialRunner,
    settings: RangeTestSettings,
    optimizer: OptimizerName = "sgd",
    weight_decay: float = 0.0,
    seed: int = 0,
    on_step: StepCallback | None = None,
) -> RangeTestTrace:
    """Train ``workload`` under the growing lr until ``settings.steps`` or clear divergence.

    ``workload`` is a task (run in the project's loop) or any trial runner that can drive the
    test, such as a user's training function.
    """
    runner = as_runner(workload)
    watch = DivergenceWatch(settings.divergence_factor)
    trace = RangeTestTrace()

    def on_update(lr: float, loss: float) -> bool:
        trace.lrs.append(lr)
        trace.losses.append(loss)
        if on_step is not None:
            on_step(len(trace.losses) - 1, lr, loss)
        if watch.update(loss):
            trace.stopped_early = True
        return trace.stopped_early

    probe = Probe(settings.scheduler, settings.momentum, settings.steps, on_update)
    start = time.perf_counter()
    try:
        runner.probe(probe, TrainSettings(1, optimizer, weight_decay, seed))
    except SystemExit as error:  # not the sweep's end: one line, as for a trial's sys.exit
        raise RangeTestFailed(
            f"the range test's training code called sys.exit({error.code!r})"
        ) from error
    except (ValueError, SweepsError):  # said in one line already (a ValueError as usage)
        raise
    except Exception as error:
        raise RangeTestFailed(
            f"the range test's training code raised {type(error).__name__}: {error}"
        ) from error
    trace.wall_time_s = time.perf_counter() - start
    if not trace.losses:
        name = runner.task.name if runner.task is not None else "the entrypoint function"
        raise ValueError(f"{name} made no updates for the range test")
    return trace
