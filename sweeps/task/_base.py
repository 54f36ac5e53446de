"""The public task protocol: the user brings data, model, loss and evaluation; we own the loop.

Because the project runs the loop, every feature works on a task: trials, ``onecycle train``,
the LR range test and ``auto`` bounds, fused trials and the batch-scaling study. The built-in
workloads are tasks too (:mod:`sweeps.workloads`).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sized
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

Direction = Literal["maximize", "minimize"]
#: The methods a task must define (checked when the sweep file is loaded).
TASK_METHODS = ("build_model", "batches", "loss", "evaluate")


class Task(abc.ABC):
    """A training problem the project can tune: subclass it, name it in ``workload.task``.

    The runner constructs it as ``Class(batch_size=..., seed=..., device=..., **options)``
    (``options`` is the sweep file's ``workload.options``), builds the model under the trial's
    torch seed, moves it to ``device``, and runs the loop: ``loss(model(x), y)`` for every
    ``(x, y)`` in ``batches(epoch)``, ``evaluate(model)`` at evaluation points.

    ``batches(epoch)`` may return a ``DataLoader`` or yield tensors already on the device; it
    must give the same batches for the same ``(seed, epoch)`` (seed a shuffle with both), so
    trials differ only in their schedule and fused trials equal trials run one at a time.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> class Line(Task):
        ...     metric = "val_loss"
        ...     direction = "minimize"
        ...     def build_model(self): return nn.Linear(1, 1)
        ...     def batches(self, epoch):
        ...         x = torch.linspace(-1, 1, 8).unsqueeze(1)
        ...         return [(x, 3 * x)]
        ...     def loss(self, output, target): return nn.functional.mse_loss(output, target)
        ...     def evaluate(self, model):
        ...         x, y = self.batches(0)[0]
        ...         return {"val_loss": float(self.loss(model(x), y))}
        >>> task = Line(batch_size=8, seed=0, device=torch.device("cpu"))
        >>> task.steps_per_epoch, task.batch_size
        (1, 8)
    """

    #: The metric ``evaluate`` returns that a trial is judged by (``objective.metric`` wins).
    metric: ClassVar[str]
    #: Whether a larger ``metric`` is better (``objective.direction`` wins).
    direction: ClassVar[Direction] = "maximize"

    def __init__(self, batch_size: int, seed: int, device: torch.device, **options: Any) -> None:
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.options = dict(options)
        self._steps_per_epoch: int | None = None

    @property
    def name(self) -> str:
        """How messages name this task: its class."""
        return type(self).__name__

    @abc.abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model (the runner seeds torch first and moves it to device)."""

    @abc.abstractmethod
    def batches(self, epoch: int) -> Iterable[tuple[Tensor, Tensor]]:
        """One epoch of ``(inputs, targets)``; the same for the same ``(seed, epoch)``."""

    @abc.abstractmethod
    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """The scalar training loss of one batch."""

    @abc.abstractmethod
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics of ``model``, including :attr:`metric`."""

    @property
    def steps_per_epoch(self) -> int:
        """Batches in an epoch: ``len(batches(0))`` when it has one, else counted once."""
        if self._steps_per_epoch is None:
            batches = self.batches(0)
            if isinstance(batches, Sized):
                self._steps_per_epoch = len(batches)
            else:
                self._steps_per_epoch = sum(1 for _ in batches)
        return self._steps_per_epoch
