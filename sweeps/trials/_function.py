"""A user's own training function as a sweep workload (``entrypoint: "pkg.module:function"``).

The function receives a :class:`TrialContext`. It builds the trial's OneCycle scheduler with
``ctx.scheduler(optimizer)`` (tracked: each ``scheduler.step()`` records the lr and momentum the
optimizer used), optionally hands each update's loss to ``ctx.log_loss(loss)``, and calls
``ctx.report(metrics)`` at evaluation points (for pruning and MLflow). It may return its final
metrics. Adapting an existing loop takes three lines::

    def train(ctx):
        model = build_model().to(ctx.device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        scheduler = ctx.scheduler(optimizer)                  # 1
        for epoch in range(ctx.epochs):
            for x, y in batches():
                loss = loss_fn(model(x), y)
                optimizer.zero_grad(); loss.backward(); optimizer.step()
                ctx.log_loss(loss)                             # 2
                scheduler.step()
            ctx.report({"val_accuracy": evaluate(model)})      # 3
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

import schedulers
from sweeps.trials._rules import LossWatch, TrainResult, TrainSettings, record_evaluation
from sweeps.trials._task import TrainingHooks
from sweeps.workloads.base import Split, Task, Workload

TrainFunction = Callable[["TrialContext"], Any]


class DivergenceStop(Exception):
    """Stops a user's loop at a diverged loss; the trial then ends with ``TrialDiverged``."""


def import_entrypoint(path: str, search: Sequence[Path] = ()) -> TrainFunction:
    """``package.module:function`` -> the function; ``ValueError`` naming what failed.

    The current directory and ``search`` (the sweep file's directory) are tried as import roots
    too, so a training module next to the sweep file works without installing it.
    """
    module_name, _, attribute = path.partition(":")
    for root in (Path.cwd(), *search):
        if str(root) not in sys.path:
            sys.path.append(str(root))
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or the module itself raising
        raise ValueError(
            f"workload.entrypoint: cannot import {module_name!r}: {type(error).__name__}: {error}"
        ) from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValueError(f"workload.entrypoint: {module_name!r} has no callable {attribute!r}")
    return function  # type: ignore[no-any-return]


class TrialContext:
    """What a user's training function gets for one trial."""

    def __init__(
        self,
        params: Mapping[str, Any],
        device: torch.device,
        seed: int,
        batch_size: int,
        epochs: int,
        options: Mapping[str, Any],
        hooks: TrainingHooks,
        divergence_factor: float = 10.0,
        settings: TrainSettings | None = None,
    ) -> None:
        self.params = dict(params)
        self.device = device
        self.seed = seed
        self.batch_size = batch_size
        self.epochs = epochs
        self.options = dict(options)
        self._hooks = hooks
        self._watch = LossWatch(divergence_factor, device)
        self._pending_loss: Tensor | None = None
        self.updates = 0
        #: What the trial has recorded: evaluations, best value, samples to the target.
        self.result = TrainResult()
        self._settings = settings

    @property
    def evaluations(self) -> list[tuple[int, int, dict[str, float]]]:
        """Every ``report`` so far: (updates, samples, metrics)."""
        return self.result.evaluations

    def scheduler(self, optimizer: Optimizer) -> schedulers.OneCycle:
        """This trial's OneCycle scheduler on ``optimizer``; its steps are tracked."""
        return _TrackedOneCycle(self, optimizer, **self.params)

    def log_loss(self, loss: Tensor | float) -> None:
        """The loss of the update just made (tracked as ``train_loss``; checked for divergence).

        The loss stays on its device: on an accelerator the check runs every few updates and
        at each ``report``, as in the built-in loop.
        """
        value = loss.detach() if isinstance(loss, Tensor) else torch.tensor(float(loss))
        self._pending_loss = value
        reason = self._watch.add(value)
        if reason is not None:
            raise DivergenceStop(reason)

    def report(self, metrics: Mapping[str, float]) -> None:
        """An evaluation point: tracked in MLflow, reported to Optuna (which may prune)."""
        reason = self._watch.check()
        if reason is not None:
            raise DivergenceStop(reason)
        values = {key: float(value) for key, value in metrics.items()}
        samples = self.updates * self.batch_size
        if self._settings is not None:
            record_evaluation(self.result, self.updates, samples, values, self._settings)
        else:
            self.result.evaluations.append((self.updates, samples, values))
        self._hooks.on_eval(self.updates, samples, values)

    def _before_scheduler_step(self, optimizer: Optimizer) -> None:
        self._hooks.on_step(self.updates, optimizer, self._pending_loss)
        self._pending_loss = None
        self.updates += 1


class _TrackedOneCycle(schedulers.OneCycle):
    """OneCycle that records each update's applied lr and momentum before moving on."""

    def __init__(self, context: TrialContext, optimizer: Optimizer, **params: Any) -> None:
        self._context: TrialContext | None = None
        super().__init__(optimizer, **params)
        self._context = context

    def step(self, batch_iteration: int | None = None) -> None:
        """Record the update just made, then advance the schedule."""
        if self._context is not None:
            self._context._before_scheduler_step(self.optimizer)
        super().step(batch_iteration)


class EntrypointWorkload(Workload):
    """Stands in for a built-in workload; :meth:`run` calls the user's function instead."""

    name: ClassVar[str] = "entrypoint"
    task: ClassVar[Task] = "multiclass"
    metric: ClassVar[str] = ""

    def __init__(
        self,
        function: TrainFunction,
        batch_size: int,
        seed: int,
        device: torch.device,
        epochs: int,
        options: Mapping[str, Any],
    ) -> None:
        super().__init__(batch_size, seed, device)
        self.function = function
        self.epochs = epochs
        self.options = dict(options)

    def load(self) -> Split:
        """Not used: the user's function brings its own data."""
        raise NotImplementedError("an entrypoint workload loads its own data")

    def build_model(self) -> nn.Module:
        """Not used: the user's function builds its own model."""
        raise NotImplementedError("an entrypoint workload builds its own model")

    @property
    def steps_per_epoch(self) -> int:
        """Unknown ahead of time (0)."""
        return 0

    def batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Not used."""
        return iter(())

    def run(
        self, schedule: Mapping[str, Any], settings: TrainSettings, hooks: TrainingHooks
    ) -> TrainResult:
        """Run the user's function for one trial and describe what it did."""
        torch.manual_seed(self.seed)
        context = TrialContext(
            schedule,
            self.device,
            self.seed,
            self.batch_size,
            self.epochs,
            self.options,
            hooks,
            settings.divergence_factor,
            settings,
        )
        result = context.result
        start = time.perf_counter()
        try:
            returned = self.function(context)
            reason = context._watch.check()
            if reason is not None:
                raise DivergenceStop(reason)
        except DivergenceStop as error:
            result.diverged, result.diverged_step = str(error), max(context.updates - 1, 0)
            returned = None
        if isinstance(returned, Mapping) and not result.diverged:
            final = {key: float(value) for key, value in returned.items()}
            if not context.evaluations or context.evaluations[-1][2] != final:
                context.report(final)
        result.steps, result.samples = context.updates, context.updates * self.batch_size
        result.wall_time_s = time.perf_counter() - start
        return result


def entrypoint_workload(config: Any, device: torch.device) -> Callable[[], Workload]:
    """A factory the sweep runner uses in place of a built-in workload."""
    function = import_entrypoint(config.workload.entrypoint)

    def make() -> Workload:
        return EntrypointWorkload(
            function,
            config.workload.batch_size,
            config.workload.seed,
            device,
            config.workload.epochs,
            config.workload.options,
        )

    return make
