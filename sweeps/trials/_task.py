"""The training loop: a workload, an optimizer and a OneCycle schedule, and nothing else.

It knows neither Optuna nor MLflow. Whoever runs it passes :class:`TrainingHooks`: ``on_step``
after every optimizer update (with the optimizer, so lr and momentum are read from what was
applied, and the loss as a device tensor, never synced here for logging) and ``on_eval`` at each
evaluation point (a hook may raise to stop, which is how pruning works). A non-finite loss, or
a loss far above where it started, ends training as a *result* with a reason, not an exception.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.optim import Optimizer

import schedulers
from sweeps.trials._rules import (
    LossWatch,
    TrainResult,
    TrainSettings,
    make_optimizer,
    record_evaluation,
)
from sweeps.workloads.base import Workload


class TrainingHooks(Protocol):
    """Callbacks from the loop; see the module docstring for when each runs."""

    def on_step(self, step: int, optimizer: Optimizer, loss: Tensor | None) -> None:
        """After update ``step`` (0-based), before the scheduler moves to the next step."""

    def on_eval(self, step: int, samples: int, metrics: Mapping[str, float]) -> None:
        """After evaluating at ``step`` updates; may raise to stop training."""


class NoHooks:
    """Hooks that do nothing (an untracked run)."""

    def on_step(self, step: int, optimizer: Optimizer, loss: Tensor | None) -> None:
        """Nothing."""

    def on_eval(self, step: int, samples: int, metrics: Mapping[str, float]) -> None:
        """Nothing."""


def train(
    workload: Workload,
    schedule: Mapping[str, Any],
    settings: TrainSettings,
    hooks: TrainingHooks | None = None,
) -> TrainResult:
    """Train ``workload``'s model under a OneCycle schedule built from DeepSpeed params."""
    hooks = hooks or NoHooks()
    torch.manual_seed(settings.seed)
    model = workload.build_model().to(workload.device)
    optimizer = make_optimizer(model, settings.optimizer, settings.weight_decay)
    scheduler = schedulers.OneCycle(optimizer, **schedule)
    eval_every = settings.eval_every or workload.steps_per_epoch
    watch = LossWatch(settings.divergence_factor, workload.device)
    result = TrainResult(model=model)
    start = time.perf_counter()
    step = 0
    model.train()
    for epoch in range(settings.epochs):
        for x, y in workload.batches(epoch):
            loss = workload.loss(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            detached = loss.detach()
            hooks.on_step(step, optimizer, detached)
            scheduler.step()
            step += 1
            result.steps, result.samples = step, step * workload.batch_size
            reason = watch.add(detached)
            if reason is None and step % eval_every == 0:
                reason = watch.check()
                if reason is None:
                    _evaluate(workload, model, settings, hooks, result)
            if reason is not None:
                result.diverged, result.diverged_step = reason, step - 1
                result.wall_time_s = time.perf_counter() - start
                return result
    reason = watch.check()
    if reason is not None:
        result.diverged, result.diverged_step = reason, step - 1
    elif not result.evaluations or result.evaluations[-1][0] != step:
        _evaluate(workload, model, settings, hooks, result)
    result.wall_time_s = time.perf_counter() - start
    return result


def _evaluate(
    workload: Workload,
    model: torch.nn.Module,
    settings: TrainSettings,
    hooks: TrainingHooks,
    result: TrainResult,
) -> None:
    metrics = workload.evaluate(model)
    record_evaluation(result, result.steps, result.samples, metrics, settings)
    hooks.on_eval(result.steps, result.samples, metrics)
