"""Your own model as a task: a small CNN on the 8x8 digits images, fed by a DataLoader.

Use it with ``task: "cnn_task:DigitsCNN"`` in a sweep file next to this one (see
``examples/cnn.yaml``). A task supplies the data, the model, the loss and the evaluation; the
project runs the loop, so every feature applies: trials, ``onecycle train``, the LR range test
and ``auto`` bounds, fused trials (this CNN is stacked through ``torch.func.vmap``) and the
batch-scaling study.
"""

from __future__ import annotations

from typing import Any

import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import sweeps


class DigitsCNN(sweeps.Task):
    """Two 3x3 convolutions with GroupNorm, then a linear classifier; 1797 images, 10 classes."""

    metric = "val_accuracy"  # what evaluate() returns that a trial is judged by
    direction = "maximize"

    def __init__(
        self,
        batch_size: int,
        seed: int,
        device: torch.device,
        channels: int = 16,
        **options: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed, device=device, **options)
        self.channels = channels  # workload.options: {channels: N}
        data = load_digits()  # bundled with scikit-learn: no download
        images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
        labels = torch.tensor(data.target, dtype=torch.long)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
        train, val = order[:1440], order[1440:]
        self.train_set = TensorDataset(images[train], labels[train])
        self.val_images, self.val_labels = images[val].to(device), labels[val].to(device)

    def build_model(self) -> nn.Module:
        """A fresh model; the runner seeds torch first and moves it to the device."""
        c = self.channels
        return nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1),
            nn.GroupNorm(4, c),  # no running statistics, so trials can be fused
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(c * 16, 10),
        )

    def batches(self, epoch: int) -> DataLoader[tuple[Tensor, ...]]:
        """One epoch, shuffled by (seed, epoch): the same batches for every trial."""
        generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        return DataLoader(
            self.train_set, batch_size=self.batch_size, shuffle=True, generator=generator
        )

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy on the logits."""
        return nn.functional.cross_entropy(output, target)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation loss and accuracy on the 357 held-out images."""
        output = model(self.val_images)
        accuracy = (output.argmax(dim=-1) == self.val_labels).float().mean()
        return {
            "val_loss": float(self.loss(output, self.val_labels)),
            "val_accuracy": float(accuracy),
        }
