"""The built-in workloads' common base: a :class:`sweeps.Task` whose data is held as tensors.

A :class:`SplitTask` owns a train/validation split held as tensors on the training device, a
model factory, a loss chosen by its problem (multiclass or binary) and an evaluation that
returns named metrics. Batches come from a ``torch.Generator`` seeded by (seed, epoch), so the
same seed gives the same batches on every run and every device.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from sweeps.task import Task
from sweeps.workloads.metrics import binary_auc

Problem = Literal["multiclass", "binary"]


@dataclass(frozen=True)
class Split:
    """Train and validation tensors (features float32, labels long or float)."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor

    def to(self, device: torch.device) -> Split:
        """The same split on ``device``."""
        return Split(*(t.to(device) for t in (self.x_train, self.y_train, self.x_val, self.y_val)))


def seeded_permutation(n: int, seed: int) -> Tensor:
    """A permutation of ``range(n)`` that depends only on ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)


def mlp(inputs: int, hidden: tuple[int, ...], outputs: int) -> nn.Sequential:
    """A ReLU MLP: the small models 1-Cycle sweeps are usually run on."""
    layers: list[nn.Module] = []
    width = inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


class SplitTask(Task):
    """Base of the built-in workloads; a subclass supplies data and a model.

    Fused trials evaluate a ``SplitTask`` that keeps this class's :meth:`evaluate` for every
    stacked trial in one batched pass; any other task is evaluated one trial at a time.
    """

    #: The name a sweep file's ``workload.builtin`` uses.
    key: ClassVar[str]
    problem: ClassVar[Problem]

    #: Hidden layer widths of the default MLP; a workload option may override them.
    hidden: tuple[int, ...] = (128, 128)

    def __init__(
        self,
        batch_size: int,
        seed: int,
        device: torch.device,
        hidden: tuple[int, ...] | list[int] | None = None,
    ) -> None:
        super().__init__(batch_size, seed, device)
        if hidden is not None:
            if not hidden or any(not isinstance(w, int) or w < 1 for w in hidden):
                raise ValueError(f"`hidden` must list positive layer widths, got {hidden!r}")
            self.hidden = tuple(hidden)
        self._split: Split | None = None

    @abc.abstractmethod
    def load(self) -> Split:
        """Build the train/validation split on the CPU (called once)."""

    @abc.abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model (uses the global torch seed)."""

    @property
    def split(self) -> Split:
        """The split, on the workload's device."""
        if self._split is None:
            self._split = self.load().to(self.device)
        return self._split

    @property
    def train_size(self) -> int:
        """Number of training samples."""
        return int(self.split.x_train.shape[0])

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer updates per epoch (the last partial batch is dropped)."""
        return max(1, self.train_size // self.batch_size)

    def batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of shuffled batches, the same for the same (seed, epoch)."""
        order = seeded_permutation(self.train_size, self.seed * 1_000_003 + epoch).to(self.device)
        x, y = self.split.x_train, self.split.y_train
        for start in range(0, self.steps_per_epoch * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            yield x[index], y[index]

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy (multiclass) or binary cross-entropy on logits."""
        if self.problem == "binary":
            return nn.functional.binary_cross_entropy_with_logits(output.squeeze(-1), target)
        return nn.functional.cross_entropy(output, target)

    def row_losses(self, outputs: Tensor, target: Tensor) -> Tensor:
        """:meth:`loss` of each row of stacked outputs ``[rows, batch, ...]``, as ``[rows]``.

        One call for all rows: ``vmap`` of :meth:`loss` runs cross-entropy through a
        decomposition about three times as slow, forward and backward.
        """
        targets = target.expand(outputs.shape[0], *target.shape)
        if self.problem == "binary":
            per_sample = nn.functional.binary_cross_entropy_with_logits(
                outputs.squeeze(-1), targets, reduction="none"
            )
        else:  # classes second, as cross_entropy wants them: [rows, classes, batch]
            per_sample = nn.functional.cross_entropy(
                outputs.transpose(1, 2), targets, reduction="none"
            )
        return per_sample.mean(dim=1)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation loss plus accuracy (multiclass) or AUC (binary)."""
        was_training = model.training
        model.eval()
        output = model(self.split.x_val)
        metrics = {"val_loss": float(self.loss(output, self.split.y_val))}
        if self.problem == "binary":
            metrics["val_auc"] = binary_auc(output.squeeze(-1), self.split.y_val)
        else:
            predicted = output.argmax(dim=-1)
            metrics["val_accuracy"] = float((predicted == self.split.y_val).float().mean())
        model.train(was_training)
        return metrics
