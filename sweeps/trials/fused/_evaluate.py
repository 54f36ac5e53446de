"""Validation metrics of stacked trials, equal to what each trial's ``evaluate`` gives alone.

A built-in workload (a :class:`~sweeps.workloads.SplitTask` keeping its ``evaluate``) is
evaluated for every row in one batched pass over its validation tensors. Any other task's
``evaluate(model)`` is the user's code: it is called once per row on a copy of the model that
holds that row's weights, so what it computes is exactly what it computes for a trial alone.
"""

from __future__ import annotations

import copy

import torch

from sweeps.task import Task
from sweeps.trials.fused._losses import row_losses
from sweeps.trials.fused._model import StackedModel
from sweeps.workloads import SplitTask
from sweeps.workloads.metrics import binary_auc


@torch.no_grad()
def evaluate_rows(task: Task, stack: StackedModel, rows: list[int]) -> dict[int, dict[str, float]]:
    """``{row: metrics}`` for the stack's ``rows``."""
    if isinstance(task, SplitTask) and type(task).evaluate is SplitTask.evaluate:
        return _batched(task, stack, rows)
    model = copy.deepcopy(stack.model)
    parameters = dict(model.named_parameters())
    metrics: dict[int, dict[str, float]] = {}
    for row in rows:
        for name, value in stack.weights(row).items():
            parameters[name].copy_(value)
        metrics[row] = {key: float(v) for key, v in task.evaluate(model).items()}
    return metrics


def _batched(task: SplitTask, stack: StackedModel, rows: list[int]) -> dict[int, dict[str, float]]:
    """The built-in rule (:meth:`SplitTask.evaluate`) for every row in one pass."""
    split = task.split
    outputs = stack(split.x_val)
    losses = row_losses(task)(outputs, split.y_val).tolist()
    if task.problem != "binary":
        accuracy = (outputs.argmax(dim=-1) == split.y_val).float().mean(dim=1).tolist()
    metrics: dict[int, dict[str, float]] = {}
    for row in rows:
        values = {"val_loss": float(losses[row])}
        if task.problem == "binary":
            values["val_auc"] = binary_auc(outputs[row].squeeze(-1), split.y_val)
        else:
            values["val_accuracy"] = float(accuracy[row])
        metrics[row] = values
    return metrics
