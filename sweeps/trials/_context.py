"""What every ``TrialContext`` does, in-process or in a launched script: written once.

A user's loop sees the same methods whichever way its trial runs: ``scheduler(optimizer)``
(this trial's OneCycle, whose steps are recorded), ``track(engine)`` (a DeepSpeed engine that
built the scheduler itself), ``log_loss`` (with the shared divergence rule) and ``report``.
Subclasses say only where a recorded update and an evaluation go: to the worker's hooks
directly (:mod:`sweeps.trials._function`) or over the trial's channel
(:mod:`sweeps.trials._script`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.optim import Optimizer

import schedulers
from sweeps.trials._rules import LossWatch


class DivergenceStop(BaseException):
    """Raised inside a user's loop when its loss diverges; ends the trial as a divergence.

    A ``BaseException``, so that a loop's ``except Exception`` does not swallow it and train on.
    """


class HasParamGroups(Protocol):
    """An optimizer, or a wrapper of one (DeepSpeed's), as far as tracking reads it."""

    param_groups: list[dict[str, Any]]


class ContextBase:
    """The shared half of a trial's context; subclasses implement ``_record`` and ``_evaluate``.

    Example:
        >>> class Printing(ContextBase):
        ...     def _record(self, step, optimizer, loss): print("update", step)
        ...     def _evaluate(self, metrics): print("report", metrics)
        >>> ctx = Printing({"cycle_min_lr": 0.01, "cycle_max_lr": 0.1})
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
        >>> ctx.scheduler(opt).step()
        update 0
        >>> ctx.report({"val_accuracy": 0.5})
        report {'val_accuracy': 0.5}
    """

    def __init__(
        self,
        params: Mapping[str, Any],
        divergence_factor: float = 10.0,
        device: torch.device | None = None,
    ) -> None:
        self.params = dict(params)
        self._watch = LossWatch(divergence_factor, device or torch.device("cpu"))
        self._pending_loss: Tensor | None = None
        #: Updates recorded so far (scheduler or engine steps).
        self.updates = 0

    def scheduler(self, optimizer: Optimizer) -> schedulers.OneCycle:
        """This trial's OneCycle scheduler on ``optimizer``; its steps are tracked."""
        return _TrackedOneCycle(self, optimizer, **self.params)

    def track(self, engine: Any) -> Any:
        """Record the lr and momentum a DeepSpeed engine applies at each ``engine.step()``.

        For an engine that built its scheduler from the trial's ``{deepspeed_config}``: the
        values are read from the engine's optimizer just before each step that updates the
        weights (a gradient-accumulation boundary), so they are the ones that update used.
        Returns ``engine``, so ``engine = trial.track(engine)`` reads naturally.
        """
        original = engine.step
        boundary = getattr(engine, "is_gradient_accumulation_boundary", None)

        def step(*args: Any, **kwargs: Any) -> Any:
            if boundary is None or boundary():
                self._before_step(engine.optimizer)
            return original(*args, **kwargs)

        engine.step = step
        return engine

    def log_loss(self, loss: Tensor | float) -> None:
        """The loss of the update just made (tracked as ``train_loss``; checked for divergence).

        The loss stays on its device: on an accelerator the check runs every few updates and
        at each ``report``, as in the built-in loop.
        """
        value = loss.detach() if isinstance(loss, Tensor) else torch.tensor(float(loss))
        self._pending_loss = value
        self._stop_if_diverged(self._watch.add(value))

    def report(self, metrics: Mapping[str, float]) -> None:
        """An evaluation point: tracked in MLflow, reported to Optuna (which may prune)."""
        self._stop_if_diverged(self._watch.check())
        self._evaluate({key: float(value) for key, value in metrics.items()})

    def _stop_if_diverged(self, reason: str | None) -> None:
        if reason is not None:
            self._diverged(reason)
            raise DivergenceStop(reason)

    def _diverged(self, reason: str) -> None:
        """Called once a divergence is found, before :class:`DivergenceStop` is raised."""

    def _before_step(self, optimizer: HasParamGroups) -> None:
        self._record(self.updates, optimizer, self._pending_loss)
        self._pending_loss = None
        self.updates += 1

    def _record(self, step: int, optimizer: HasParamGroups, loss: Tensor | None) -> None:
        """Update ``step`` used ``optimizer``'s current lr and momentum, and had ``loss``."""
        raise NotImplementedError

    def _evaluate(self, metrics: dict[str, float]) -> None:
        """An evaluation at :attr:`updates` updates."""
        raise NotImplementedError


class _TrackedOneCycle(schedulers.OneCycle):
    """OneCycle that records each update's applied lr and momentum before moving on."""

    def __init__(self, context: ContextBase, optimizer: Optimizer, **params: Any) -> None:
        self._context: ContextBase | None = None
        super().__init__(optimizer, **params)
        self._context = context

    def step(self, batch_iteration: int | None = None) -> None:
        """Record the update just made, then advance the schedule."""
        if self._context is not None:
            self._context._before_step(self.optimizer)
        super().step(batch_iteration)
