"""Per-trial MLflow logging: every update's lr and momentum, losses, evaluations, outcome.

:class:`TrialTracker` is the training loop's hook. ``on_step`` reads lr and momentum back from
``optimizer.param_groups`` (what the update used, not what was meant) and keeps the loss as a
device tensor; ``on_eval`` turns the buffered losses into floats with one ``torch.stack`` (one
device sync per evaluation instead of one per step) and hands the whole batch to the
:class:`storage.tracking.Tracking` writer, which runs in another process. Metric step k is the
k-th update, 0-based.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from storage.tracking import Point, RunEnd, Tracking
from sweeps.tracking import FAILURE_TAG, PRUNED_TAG, RUN_STATUS, STATE_TAG, trial_artifacts
from sweeps.trials._rules import TrainResult


def momentum_of(group: Mapping[str, Any]) -> float | None:
    """SGD's ``momentum`` or Adam's ``betas[0]``; None for optimizers with neither."""
    if "betas" in group:
        return float(group["betas"][0])
    if "momentum" in group:
        return float(group["momentum"])
    return None


class TrialTracker:
    """Training hooks that buffer per-step values and ship them at evaluation points."""

    def __init__(self, tracking: Tracking, run_id: str) -> None:
        self.tracking = tracking
        self.run_id = run_id
        self._points: list[Point] = []
        self._losses: list[Tensor] = []
        self._loss_steps: list[tuple[int, int]] = []

    def on_step(self, step: int, optimizer: Optimizer, loss: Tensor | None) -> None:
        """Record the lr and momentum this update used, and its loss (left on the device)."""
        now = int(time.time() * 1000)
        groups = optimizer.param_groups
        points = self._points
        for index, group in enumerate(groups):
            lr = group["lr"]
            lr_value = float(lr) if isinstance(lr, Tensor) else lr
            momentum = momentum_of(group)
            if index == 0:
                points.append(("lr", lr_value, step, now))
                if momentum is not None:
                    points.append(("momentum", momentum, step, now))
            if len(groups) > 1:
                points.append((f"lr/group{index}", lr_value, step, now))
                if momentum is not None:
                    points.append((f"momentum/group{index}", momentum, step, now))
        if loss is not None:
            self._losses.append(loss)
            self._loss_steps.append((step, now))

    def on_eval(self, step: int, samples: int, metrics: Mapping[str, float]) -> None:
        """Ship everything buffered, plus the evaluation's metrics at this step."""
        now = int(time.time() * 1000)
        last = max(step - 1, 0)
        self._points.extend((key, float(value), last, now) for key, value in metrics.items())
        self.flush()

    def flush(self) -> None:
        """Hand buffered values to the writer (no waiting); called at the end and on failure."""
        if self._losses:
            values = torch.stack(self._losses).float().cpu().tolist()
            self._points.extend(
                ("train_loss", value, step, when)
                for value, (step, when) in zip(values, self._loss_steps, strict=True)
            )
            self._losses.clear()
            self._loss_steps.clear()
        if self._points:
            self.tracking.log_metrics(self.run_id, self._points)
            self._points = []


def trial_run_end(
    metric: str,
    schedule: Mapping[str, Any],
    outcome: tuple[str, str | None],
    result: TrainResult | None,
    started: float,
    objective: float | None = None,
    plot: bool = True,
) -> RunEnd:
    """How a trial's run ends, for ``Tracking.end_runs``.

    Final metrics, outcome tags, the artifacts call (scheduler JSON and PNG) and the status.
    ``outcome`` is (Optuna state name, failure reason or None); the run's status follows from
    the state (:data:`sweeps.tracking.RUN_STATUS`): COMPLETE ends FINISHED, PRUNED ends KILLED
    (tagged ``pruned``), FAIL ends FAILED with the reason as a tag.
    ``plot=False`` leaves out the lr/momentum PNG (the JSON scheduler block is always logged).
    """
    import schedulers

    state, reason = outcome
    status = RUN_STATUS[state]
    step = max((result.steps - 1) if result else 0, 0)
    now = int(time.time() * 1000)
    finals: dict[str, float] = {"wall_time_s": time.perf_counter() - started}
    if result is not None:
        finals.update(steps=result.steps, samples=result.samples)
        if result.best is not None:
            finals[f"best_{metric}"] = result.best
        if result.samples_to_target is not None:
            finals["samples_to_target"] = result.samples_to_target
    if objective is not None:
        finals["objective"] = objective
    tags: dict[str, str] = {STATE_TAG: state}
    if state == "PRUNED":
        tags[PRUNED_TAG] = "true"
    if reason is not None:
        tags[FAILURE_TAG] = reason[:5000]
    block = {"type": "OneCycle", "params": schedulers.with_defaults("OneCycle", dict(schedule))}
    return RunEnd(
        status,
        tags,
        [(k, float(v), step, now) for k, v in finals.items()],
        (trial_artifacts, {"scheduler_block": block, "plot": plot}),
    )
