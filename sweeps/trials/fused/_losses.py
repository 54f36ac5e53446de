"""Each stacked trial's loss on a shared batch: ``[rows, batch, ...]`` outputs to ``[rows]``."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor
from torch.func import vmap

from sweeps.task import Task
from sweeps.workloads import SplitTask

RowLosses = Callable[[Tensor, Tensor], Tensor]


def row_losses(task: Task) -> RowLosses:
    """The built-in loss's batched form when the task keeps it, else ``vmap`` of its ``loss``.

    A user's ``loss`` is theirs to define, so only ``vmap`` can run it per row unchanged.
    """
    if isinstance(task, SplitTask) and type(task).loss is SplitTask.loss:
        return task.row_losses
    return vmap(task.loss, in_dims=(0, None))
