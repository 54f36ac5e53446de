"""``synthetic_ctr``: a generated click-through-rate task for large-batch studies.

Rows have dense features and a few categorical ones (one-hot into the input). The label is
drawn from a logistic model with pairwise interactions and a low base rate, so a model has
something to learn beyond a linear fit and AUC is the natural metric. Generation is seeded and
vectorised: 200,000 rows take well under a second on a CPU.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from sweeps.workloads.base import Problem, Split, SplitTask, mlp

DENSE = 16
CATEGORICAL = (8, 8, 4)  # cardinalities, one-hot encoded


class SyntheticCTR(SplitTask):
    """Generated binary task of configurable size; metric ``val_auc``."""

    key: ClassVar[str] = "synthetic_ctr"
    problem: ClassVar[Problem] = "binary"
    metric: ClassVar[str] = "val_auc"
    hidden = (256, 256)

    def __init__(
        self,
        batch_size: int,
        seed: int,
        device: torch.device,
        hidden: tuple[int, ...] | list[int] | None = None,
        rows: int = 200_000,
    ) -> None:
        super().__init__(batch_size, seed, device, hidden)
        if rows < 1000:
            raise ValueError(f"`rows` must be >= 1000, got {rows}")
        self.rows = rows

    @property
    def inputs(self) -> int:
        """Model input width: dense features plus one-hot categoricals."""
        return DENSE + sum(CATEGORICAL)

    def load(self) -> Split:
        """Generate the rows and labels; the truth depends on ``seed`` too."""
        generator = torch.Generator().manual_seed(10_007 + self.seed)
        dense = torch.randn(self.rows, DENSE, generator=generator)
        codes = [torch.randint(0, k, (self.rows,), generator=generator) for k in CATEGORICAL]
        onehots = [
            nn.functional.one_hot(c, k).float() for c, k in zip(codes, CATEGORICAL, strict=True)
        ]
        x = torch.cat([dense, *onehots], dim=1)
        weights = torch.randn(self.inputs, generator=generator) * 0.6
        pairs = torch.randn(DENSE, DENSE, generator=generator) * 0.25
        logit = x @ weights + ((dense @ pairs) * dense).sum(dim=1) / DENSE**0.5 - 1.5
        y = torch.bernoulli(torch.sigmoid(logit), generator=generator)
        n_val = self.rows // 5
        return Split(x[n_val:], y[n_val:], x[:n_val], y[:n_val])

    def build_model(self) -> nn.Module:
        """An MLP: inputs -> hidden -> 1 (a logit)."""
        return mlp(self.inputs, self.hidden, 1)
