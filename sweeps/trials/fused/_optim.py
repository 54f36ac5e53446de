"""SGD with momentum and AdamW over stacked parameters: one row per trial, per-trial lr/momentum.

Each parameter is a ``[K, ...]`` tensor, row k belonging to trial k. The update is torch's own
algorithm (``torch.optim.SGD`` with dampening 0, ``torch.optim.AdamW`` without amsgrad), written
once for all rows, with lr and momentum (or beta1) given per row for this update. Rows whose trial
has stopped (pruned, diverged) get lr 0 and keep their weights; rows never mix, so a NaN in a
dead row cannot reach the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

OptimizerName = Literal["sgd", "adamw"]


def per_row(values: Tensor, like: Tensor) -> Tensor:
    """``[K]`` values shaped to broadcast against a ``[K, ...]`` tensor, in its dtype."""
    return values.to(dtype=like.dtype).view(-1, *([1] * (like.dim() - 1)))


class StackedOptimizer:
    """``step(lr, momentum, active)`` updates every stacked parameter from its ``.grad``."""

    def __init__(
        self,
        params: Sequence[Tensor],
        name: OptimizerName = "sgd",
        weight_decay: float = 0.0,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        if name not in ("sgd", "adamw"):
            raise ValueError(f"`optimizer` must be 'sgd' or 'adamw', got {name!r}")
        self.params = list(params)
        self.name = name
        self.weight_decay = weight_decay
        self.beta2, self.eps = beta2, eps
        self.steps = 0
        self._first: list[Tensor | None] = [None] * len(self.params)
        self._second: list[Tensor | None] = [None] * len(self.params)

    @torch.no_grad()
    def step(self, lr: Tensor, momentum: Tensor | None, active: Tensor) -> None:
        """One update with per-row ``lr`` and ``momentum`` ([K] tensors); inactive rows kept.

        In place, one pass over memory per operation, like torch's own single-tensor loops: a
        stopped row's lr is 0, so ``param - 0 * buffer`` leaves it exactly as it was.
        """
        self.steps += 1
        effective = torch.where(active, lr, torch.zeros_like(lr))
        for index, param in enumerate(self.params):
            grad = param.grad
            if grad is None:
                continue
            lr_row = per_row(effective, param)
            if self.name == "sgd":
                self._sgd(index, param, grad, lr_row, momentum)
            else:
                self._adamw(index, param, grad, lr_row, momentum)

    def _sgd(
        self, index: int, param: Tensor, grad: Tensor, lr: Tensor, momentum: Tensor | None
    ) -> None:
        if self.weight_decay != 0:
            grad.add_(param, alpha=self.weight_decay)
        direction = grad
        if momentum is not None:
            buffer = self._first[index]
            if buffer is None:
                buffer = grad.clone()
                self._first[index] = buffer
            else:
                buffer.mul_(per_row(momentum, param)).add_(grad)
            direction = buffer
        param.addcmul_(direction, lr, value=-1.0)

    def _adamw(
        self, index: int, param: Tensor, grad: Tensor, lr: Tensor, beta1: Tensor | None
    ) -> None:
        if beta1 is None:
            beta1 = torch.full((param.shape[0],), 0.9, dtype=torch.float64, device=param.device)
        b1 = per_row(beta1, param)
        if self.weight_decay != 0:
            param.mul_(1 - lr * self.weight_decay)
        first = self._first[index]
        second = self._second[index]
        if first is None or second is None:
            first, second = torch.zeros_like(param), torch.zeros_like(param)
            self._first[index], self._second[index] = first, second
        first.lerp_(grad, 1 - b1)
        second.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        correction1 = 1 - per_row(beta1.pow(self.steps), param)
        correction2 = 1 - self.beta2**self.steps
        denominator = (second.sqrt() / math.sqrt(correction2)).add_(self.eps)
        param.addcmul_(first.div(denominator), lr / correction1, value=-1.0)

    def state_rows(self, rows: Tensor) -> None:
        """Keep only ``rows`` of every optimizer state tensor (after the stack is compacted)."""
        for store in (self._first, self._second):
            for index, value in enumerate(store):
                if value is not None:
                    store[index] = value.index_select(0, rows)
