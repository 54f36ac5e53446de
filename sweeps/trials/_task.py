"""The training loop: a workload, an optimizer and a OneCycle schedule, and nothing else.

It knows neither Optuna nor MLflow. Whoever runs it passes :class:`TrainingHooks`: ``on_step``
after every optimizer update (with the optimizer, so lr and momentum are read from what was
applied, and the loss as a device tensor, never synced here for logging) and ``on_eval`` at each
evaluation point (a hook may raise to stop, which is how pruning works). A non-finite loss, or
a loss far above where it started, ends training as a *result* with a reason, not an exception.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from torch import Tensor
from torch.optim import Optimizer

import schedulers
from sweeps.workloads.base import Workload

OptimizerName = Literal["sgd", "adamw"]
Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class TrainSettings:
    """How to train one trial (the schedule's parameters come separately)."""

    epochs: int
    optimizer: OptimizerName = "sgd"
    weight_decay: float = 0.0
    seed: int = 0
    metric: str = "val_accuracy"
    direction: Direction = "maximize"
    eval_every: int | None = None
    target: float | None = None
    divergence_factor: float = 10.0


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


@dataclass
class TrainResult:
    """What a training run produced."""

    steps: int = 0
    samples: int = 0
    wall_time_s: float = 0.0
    evaluations: list[tuple[int, int, dict[str, float]]] = field(default_factory=list)
    best: float | None = None
    samples_to_target: int | None = None
    diverged: str | None = None
    diverged_step: int | None = None
    #: The trained model (for checks and for saving weights); not part of any record.
    model: torch.nn.Module | None = field(default=None, repr=False, compare=False)

    @property
    def final(self) -> dict[str, float]:
        """Metrics of the last evaluation (empty if none ran)."""
        return self.evaluations[-1][2] if self.evaluations else {}


def make_optimizer(
    model: torch.nn.Module, name: OptimizerName, weight_decay: float = 0.0
) -> Optimizer:
    """SGD with momentum or AdamW; the schedule overwrites lr and momentum at once."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=weight_decay)
    raise ValueError(f"`optimizer` must be 'sgd' or 'adamw', got {name!r}")


def _better(value: float, best: float | None, direction: Direction) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best if direction == "maximize" else value < best


def _reached(value: float, target: float, direction: Direction) -> bool:
    return value >= target if direction == "maximize" else value <= target


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
    check_every = 1 if workload.device.type == "cpu" else 32
    result = TrainResult(model=model)
    pending: list[Tensor] = []
    first_loss: float | None = None
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
            pending.append(detached)
            if len(pending) >= check_every:
                first_loss = first_loss if first_loss is not None else float(pending[0])
                reason = _divergence(pending, first_loss, settings.divergence_factor)
                if reason is not None:
                    result.diverged, result.diverged_step = reason, step - 1
                    result.wall_time_s = time.perf_counter() - start
                    return result
                pending.clear()
            if step % eval_every == 0:
                _evaluate(workload, model, settings, hooks, result)
    if not result.evaluations or result.evaluations[-1][0] != step:
        _evaluate(workload, model, settings, hooks, result)
    result.wall_time_s = time.perf_counter() - start
    return result


def _divergence(losses: list[Tensor], first: float, factor: float) -> str | None:
    values = torch.stack(losses)
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        return "non-finite loss"
    peak = float(values.max())
    if peak > factor * max(first, 1e-12):
        return f"loss {peak:.4g} exceeded {factor:g}x its first value {first:.4g}"
    return None


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


def record_evaluation(
    result: TrainResult,
    step: int,
    samples: int,
    metrics: dict[str, float],
    settings: TrainSettings,
) -> None:
    """Append an evaluation to ``result``; move its best value and samples-to-target on."""
    result.evaluations.append((step, samples, metrics))
    value = metrics.get(settings.metric, float("nan"))
    if _better(value, result.best, settings.direction):
        result.best = value
    if (
        settings.target is not None
        and result.samples_to_target is None
        and _reached(value, settings.target, settings.direction)
    ):
        result.samples_to_target = samples
