"""The rules every trial runner shares: optimizers, divergence, what an evaluation records.

Written once so the built-in loop, fused trials, a user's function and the range test cannot
drift apart (a user's loop on a GPU once never had its losses checked at all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor
from torch.optim import Optimizer

from sweeps.config import OptimizerName

Direction = Literal["maximize", "minimize"]
#: Losses checked at a time on an accelerator: one device sync per this many updates.
DEVICE_CHECK_EVERY = 32


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


def divergence_reason(peak: float, first: float, factor: float) -> str | None:
    """Why a run whose losses peaked at ``peak`` has diverged, or None: the rule itself.

    Example:
        >>> divergence_reason(50.0, 2.0, 10.0)
        'loss 50 exceeded 10x its first value 2'
        >>> divergence_reason(float("nan"), 2.0, 10.0)
        'non-finite loss'
    """
    if not math.isfinite(peak) or math.isnan(first):
        return "non-finite loss"
    if peak > factor * max(first, 1e-12):
        return f"loss {peak:.4g} exceeded {factor:g}x its first value {first:.4g}"
    return None


class LossWatch:
    """One run's divergence check, over losses left on their device until a check.

    A CPU loss is checked at once; on an accelerator :data:`DEVICE_CHECK_EVERY` losses are
    checked together (one sync). The first loss checked is the reference.
    """

    def __init__(self, factor: float, device: torch.device) -> None:
        self.factor = factor
        self.every = 1 if device.type == "cpu" else DEVICE_CHECK_EVERY
        self.first: float | None = None
        self._pending: list[Tensor] = []

    def add(self, loss: Tensor) -> str | None:
        """Take one update's loss; the divergence reason when this check finds one."""
        self._pending.append(loss.detach().float().reshape(()))
        return self.check() if len(self._pending) >= self.every else None

    def check(self) -> str | None:
        """Check every loss not checked yet (at an evaluation, at the end)."""
        if not self._pending:
            return None
        values = torch.stack(self._pending)
        self._pending.clear()
        finite, peak, first = bool(torch.isfinite(values).all()), float(values.max()), None
        if self.first is None:
            first = float(values[0])
            self.first = first if math.isfinite(first) else math.nan
        if not finite:
            return "non-finite loss"
        return divergence_reason(peak, self.first, self.factor)


def set_momentum(optimizer: Optimizer, momentum: float) -> None:
    """Hold SGD's ``momentum`` or Adam's ``betas[0]`` at ``momentum`` in every group."""
    for group in optimizer.param_groups:
        if "betas" in group:
            group["betas"] = (momentum, group["betas"][1])
        elif "momentum" in group:
            group["momentum"] = momentum
