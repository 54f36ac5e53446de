"""A user's own task, as a new user would write it: a small CNN on 8x8 digits via a DataLoader.

Lives in the test folder (not a built-in); sweep files in tests name it ``digits_cnn:TinyCNN``
and find it next to themselves. Small on purpose: 640 training images, one epoch is 10 updates.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import sweeps


class TinyCNN(sweeps.Task):
    """Conv(1->4, 3x3) -> ReLU -> Linear(144 -> 10) on standardised 8x8 digits."""

    metric = "val_accuracy"
    direction = "maximize"

    def __init__(
        self, batch_size: int, seed: int, device: torch.device, channels: int = 4, **options: Any
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed, device=device, **options)
        from sklearn.datasets import load_digits

        data = load_digits()
        x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.tensor(data.target, dtype=torch.long)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
        train, val = order[:640], order[640:896]
        self.train_set = TensorDataset(x[train], y[train])
        self.x_val, self.y_val = x[val].to(device), y[val].to(device)
        self.channels = channels

    def build_model(self) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, self.channels, 3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(self.channels * 36, 10),
        )

    def batches(self, epoch: int) -> DataLoader[tuple[Tensor, ...]]:
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        return DataLoader(
            self.train_set, batch_size=self.batch_size, shuffle=True, generator=generator
        )

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return nn.functional.cross_entropy(output, target)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        output = model(self.x_val)
        return {
            "val_loss": float(self.loss(output, self.y_val)),
            "val_accuracy": float((output.argmax(-1) == self.y_val).float().mean()),
        }


class GroupNormCNN(TinyCNN):
    """The same with a normalisation layer that keeps no running statistics."""

    def build_model(self) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, self.channels, 3),
            nn.GroupNorm(2, self.channels),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(self.channels * 36, 10),
        )


class BatchNormCNN(TinyCNN):
    """Running statistics: fine one trial at a time, refused for fused trials."""

    def build_model(self) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, self.channels, 3),
            nn.BatchNorm2d(self.channels),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(self.channels * 36, 10),
        )


class NoMetric(TinyCNN):
    """``evaluate`` forgets the metric the class names."""

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return {"val_loss": float(self.loss(model(self.x_val), self.y_val))}


class NoBatches(TinyCNN):
    """An empty epoch."""

    def batches(self, epoch: int) -> DataLoader[tuple[Tensor, ...]]:
        return DataLoader(TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0)), batch_size=8)


class Unseeded(TinyCNN):
    """Shuffles without the (seed, epoch) generator: different batches every call."""

    def batches(self, epoch: int) -> DataLoader[tuple[Tensor, ...]]:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)


class _Pinned(nn.Linear):
    """A layer that ignores ``.to()``: its weight stays on the meta device."""

    def _apply(self, fn: Any, recurse: bool = True) -> _Pinned:
        return self


class OffDevice(TinyCNN):
    """A parameter that is not on the task's device."""

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Flatten(), _Pinned(64, 10, device="meta"))


class NoEvaluate(sweeps.Task):
    """Forgets ``evaluate``."""

    metric = "val_accuracy"

    def build_model(self) -> nn.Module:
        return nn.Linear(1, 1)

    def batches(self, epoch: int) -> list[tuple[Tensor, Tensor]]:
        return []

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return output.sum()


class NotATask:
    """Looks like a task, does not subclass sweeps.Task."""

    metric = "val_accuracy"
