"""The project's loop over a :class:`sweeps.Task`: model, optimizer, OneCycle, and nothing else.

It knows neither Optuna nor MLflow. Whoever runs it passes :class:`TrainingHooks`: ``on_step``
after every optimizer update (with the optimizer, so lr and momentum are read from what was
applied, and the loss as a device tensor, never synced here for logging) and ``on_eval`` at each
evaluation point (a hook may raise to stop, which is how pruning works). A non-finite loss, or
a loss far above where it started, ends training as a *result* with a reason, not an exception.
Evaluation points are every ``eval_every`` updates, else the end of each epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor
from torch.optim import Optimizer

import schedulers
from sweeps.task import Task, build_model, check_task, import_task, make_task, to_device
from sweeps.trials._exits import exits_fail_the_trial
from sweeps.trials._probe import Probe
from sweeps.trials._rules import (
    LossWatch,
    TrainResult,
    TrainSettings,
    make_optimizer,
    record_evaluation,
    set_momentum,
)

if TYPE_CHECKING:
    from sweeps.config import Workload as WorkloadSection
    from sweeps.trials._env import RunnerEnv


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
    task: Task,
    schedule: Mapping[str, Any],
    settings: TrainSettings,
    hooks: TrainingHooks | None = None,
) -> TrainResult:
    """Train ``task``'s model under a OneCycle schedule built from DeepSpeed params."""
    hooks = hooks or NoHooks()
    torch.manual_seed(settings.seed)
    model = build_model(task)
    optimizer = make_optimizer(model, settings.optimizer, settings.weight_decay)
    scheduler = schedulers.OneCycle(optimizer, **schedule)
    watch = LossWatch(settings.divergence_factor, task.device)
    result = TrainResult(model=model)
    start = time.perf_counter()
    step = 0
    model.train()
    for epoch in range(settings.epochs):
        for x, y in task.batches(epoch):
            loss = task.loss(model(to_device(x, task.device)), to_device(y, task.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            detached = loss.detach()
            hooks.on_step(step, optimizer, detached)
            scheduler.step()
            step += 1
            result.steps, result.samples = step, step * task.batch_size
            reason = watch.add(detached)
            if reason is None and settings.eval_every and step % settings.eval_every == 0:
                reason = watch.check()
                if reason is None:
                    _evaluate(task, model, settings, hooks, result)
            if reason is not None:
                return _diverged(result, reason, step, start)
        if not settings.eval_every and step and _unevaluated(result, step):
            reason = watch.check()
            if reason is not None:
                return _diverged(result, reason, step, start)
            _evaluate(task, model, settings, hooks, result)
    reason = watch.check()
    if reason is not None:
        return _diverged(result, reason, step, start)
    if _unevaluated(result, step):
        _evaluate(task, model, settings, hooks, result)
    result.wall_time_s = time.perf_counter() - start
    return result


def _unevaluated(result: TrainResult, step: int) -> bool:
    return not result.evaluations or result.evaluations[-1][0] != step


def _diverged(result: TrainResult, reason: str, step: int, start: float) -> TrainResult:
    result.diverged, result.diverged_step = reason, step - 1
    result.wall_time_s = time.perf_counter() - start
    return result


def _evaluate(
    task: Task,
    model: torch.nn.Module,
    settings: TrainSettings,
    hooks: TrainingHooks,
    result: TrainResult,
) -> None:
    metrics = task.evaluate(model)
    record_evaluation(result, result.steps, result.samples, metrics, settings)
    hooks.on_eval(result.steps, result.samples, metrics)


class TaskRunner:
    """Trials of a :class:`sweeps.Task` (a built-in or a user's) in the project's loop."""

    def __init__(self, task: Task) -> None:
        self.task: Task | None = task
        self._task = task
        self.batch_size = task.batch_size
        self.device = task.device

    def planned_steps(self, epochs: int) -> int:
        """Batches per epoch times ``epochs``."""
        return self._task.steps_per_epoch * epochs

    def check(self, settings: TrainSettings) -> None:
        """Each method once on an untrained model (:func:`sweeps.task.check_task`)."""
        check_task(self._task, settings.metric, settings.seed)

    @exits_fail_the_trial
    def run(
        self, schedule: Mapping[str, Any], settings: TrainSettings, hooks: TrainingHooks
    ) -> TrainResult:
        """One trial: :func:`train`."""
        return train(self._task, schedule, settings, hooks)

    def probe(self, probe: Probe, settings: TrainSettings) -> None:
        """The task's model, optimizer and batches under ``probe``'s lr, epoch after epoch."""
        task = self._task
        torch.manual_seed(settings.seed)
        model = build_model(task)
        optimizer = make_optimizer(model, settings.optimizer, settings.weight_decay)
        if probe.momentum is not None:
            set_momentum(optimizer, probe.momentum)
        scheduler = probe.scheduler(optimizer)
        model.train()
        updates, epoch, produced = 0, 0, True
        while produced and updates < probe.steps:
            produced = False
            for x, y in task.batches(epoch):
                produced = True
                loss = task.loss(model(to_device(x, task.device)), to_device(y, task.device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                lr = float(optimizer.param_groups[0]["lr"])
                value = float(loss.detach())  # the stop rule needs it now; a range test is short
                if math.isfinite(value):
                    optimizer.step()
                scheduler.step()
                updates += 1
                if probe.on_update(lr, value) or updates >= probe.steps:
                    return
            epoch += 1


def task_runner(section: WorkloadSection, env: RunnerEnv) -> TaskRunner:
    """A runner for ``workload.builtin`` or ``workload.task``: the task built on the device."""
    device, base = env.device, env.base
    if section.builtin is not None:
        from sweeps.workloads import BUILTIN

        if section.builtin not in BUILTIN:
            raise ValueError(
                f"workload.builtin: must be one of {sorted(BUILTIN)}, got {section.builtin!r}"
            )
        cls: type[Task] = BUILTIN[section.builtin]
    else:
        cls = import_task(section.task or "", [base] if base else [])
    return TaskRunner(make_task(cls, section.batch_size, section.seed, device, section.options))
