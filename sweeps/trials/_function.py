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

The LR range test runs the same function through :meth:`FunctionRunner.probe`: the context's
scheduler is then the test's (``_probe.py``), its ``log_loss`` feeds the test's curve, and the
test ends the function by raising :class:`~sweeps.trials.RangeTestDone` from ``step()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor
from torch.optim import Optimizer

from sweeps.task import Task, import_attribute
from sweeps.trials._context import ContextBase, DivergenceStop, HasParamGroups
from sweeps.trials._exits import exits_fail_the_trial
from sweeps.trials._probe import Probe, ProbeScheduler, RangeTestDone
from sweeps.trials._rules import TrainResult, TrainSettings, record_evaluation
from sweeps.trials._task import NoHooks, TrainingHooks

if TYPE_CHECKING:
    from sweeps.config import Workload as WorkloadSection
    from sweeps.trials._env import RunnerEnv

TrainFunction = Callable[["TrialContext"], Any]


def import_entrypoint(path: str, search: Sequence[Path] = ()) -> TrainFunction:
    """``package.module:function`` -> the function; ``ValueError`` naming what failed.

    The current directory and ``search`` (the sweep file's directory) are tried as import roots
    too, so a training module next to the sweep file works without installing it.
    """
    function = import_attribute(path, "workload.entrypoint", search)
    module_name, _, attribute = path.partition(":")
    if not callable(function) or isinstance(function, type):
        hint = "; a sweeps.Task class goes in `workload.task`" if _is_task(function) else ""
        raise ValueError(
            f"workload.entrypoint: {module_name!r} has no callable {attribute!r}{hint}"
        )
    return function  # type: ignore[no-any-return]


def _is_task(found: Any) -> bool:
    return isinstance(found, type) and issubclass(found, Task)


class TrialContext(ContextBase):
    """What a user's training function gets for one trial (the methods: :class:`ContextBase`)."""

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
        super().__init__(params, divergence_factor, device)
        self.device = device
        self.seed = seed
        self.batch_size = batch_size
        self.epochs = epochs
        self.options = dict(options)
        self._hooks = hooks
        #: What the trial has recorded: evaluations, best value, samples to the target.
        self.result = TrainResult()
        self._settings = settings
        #: True while the LR range test runs the function (its scheduler is the test's).
        self.in_range_test = False

    @property
    def evaluations(self) -> list[tuple[int, int, dict[str, float]]]:
        """Every ``report`` so far: (updates, samples, metrics)."""
        return self.result.evaluations

    def _evaluate(self, metrics: dict[str, float]) -> None:
        samples = self.updates * self.batch_size
        if self._settings is not None:
            record_evaluation(self.result, self.updates, samples, metrics, self._settings)
        else:
            self.result.evaluations.append((self.updates, samples, metrics))
        self._hooks.on_eval(self.updates, samples, metrics)

    def _record(self, step: int, optimizer: HasParamGroups, loss: Tensor | None) -> None:
        self._hooks.on_step(step, cast(Optimizer, optimizer), loss)


class FunctionRunner:
    """Trials of a user's training function (``workload.entrypoint``), each given a context."""

    task: Task | None = None

    def __init__(
        self,
        function: TrainFunction,
        batch_size: int,
        seed: int,
        device: torch.device,
        epochs: int,
        options: Mapping[str, Any],
    ) -> None:
        self.function = function
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.epochs = epochs
        self.options = dict(options)

    def planned_steps(self, epochs: int) -> int:
        """Unknown ahead of time (0): the function runs its own loop."""
        return 0

    def check(self, settings: TrainSettings) -> None:
        """Nothing to run ahead: the function is only called for a trial."""

    def context(
        self,
        params: Mapping[str, Any],
        hooks: TrainingHooks,
        settings: TrainSettings,
        kind: type[TrialContext] | None = None,
    ) -> TrialContext:
        """A trial's context for the function."""
        return (kind or TrialContext)(
            params,
            self.device,
            self.seed,
            self.batch_size,
            self.epochs,
            self.options,
            hooks,
            settings.divergence_factor,
            settings,
        )

    @exits_fail_the_trial
    def run(
        self, schedule: Mapping[str, Any], settings: TrainSettings, hooks: TrainingHooks
    ) -> TrainResult:
        """Run the user's function for one trial and describe what it did."""
        torch.manual_seed(self.seed)
        context = self.context(schedule, hooks, settings)
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

    def probe(self, probe: Probe, settings: TrainSettings) -> None:
        """Call the function with a context whose scheduler is ``probe``'s (the range test).

        ``ctx.epochs`` is the test's update budget then (every epoch makes at least one
        update), so a loop over ``range(ctx.epochs)`` runs until the test ends it.
        """
        torch.manual_seed(self.seed)
        context = cast(_RangeTestContext, self.context({}, NoHooks(), settings, _RangeTestContext))
        context.probe = probe
        context.in_range_test = True
        context.epochs = max(self.epochs, probe.steps)
        try:
            self.function(context)
        except RangeTestDone:
            return


class _RangeTestContext(TrialContext):
    """A :class:`TrialContext` whose scheduler is the LR range test's (see ``_probe.py``)."""

    probe: Probe
    _loss: float | None = None

    def scheduler(self, optimizer: Optimizer) -> Any:
        """The range test's lr schedule on ``optimizer`` (not a trial's OneCycle)."""
        return ProbeScheduler(self.probe, optimizer, self)

    def log_loss(self, loss: Tensor | float) -> None:
        """The update's loss, read now: the test decides after every update."""
        self._loss = float(loss.detach()) if isinstance(loss, Tensor) else float(loss)

    def take_loss(self) -> float | None:
        """The loss logged for the update about to be stepped past (once)."""
        loss, self._loss = self._loss, None
        return loss

    def report(self, metrics: Mapping[str, float]) -> None:
        """Ignored: the range test reads losses only."""


def function_runner(section: WorkloadSection, env: RunnerEnv) -> FunctionRunner:
    """A runner for ``workload.entrypoint`` on the worker's device."""
    return FunctionRunner(
        import_entrypoint(section.entrypoint or "", [env.base] if env.base else []),
        section.batch_size,
        section.seed,
        env.device,
        section.epochs,
        section.options,
    )
