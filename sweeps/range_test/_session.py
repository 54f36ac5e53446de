"""One range test of a sweep file's workload (any kind that can drive it): train, read, record.

Shared by ``onecycle range-test`` and by a sweep with ``auto`` bounds, which runs it once
before its first trial and records it as a child run of the sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from sweeps.config import RangeTestResult, SweepConfig
from sweeps.range_test._report import RANGE_TEST_ROLE, log_range_test
from sweeps.range_test._rule import RangeSuggestion, suggest
from sweeps.range_test._run import RangeTestSettings, RangeTestTrace, StepCallback, run_range_test
from sweeps.space import momentum_for_test
from sweeps.tracking import ROLE_TAG, SWEEP_TAG
from sweeps.trials import TrialRunner, make_runner

PARENT_TAG = "mlflow.parentRunId"


@dataclass
class RangeTestOutcome:
    """A finished range test: how it ran, what it saw, what it suggests, where it is logged."""

    settings: RangeTestSettings
    trace: RangeTestTrace
    suggestion: RangeSuggestion
    run_id: str | None = None

    def result(self) -> RangeTestResult:
        """The part a sweep keeps to set its ``auto`` bounds."""
        return RangeTestResult(
            cycle_min_lr=self.suggestion.cycle_min_lr,
            cycle_max_lr=self.suggestion.cycle_max_lr,
            lr_diverged=self.suggestion.lr_diverged,
            run_id=self.run_id,
        )


def settings_for(config: SweepConfig, **overrides: Any) -> RangeTestSettings:
    """The sweep file's ``range_test`` section, with CLI flags (not None) on top."""
    section = config.range_test
    values: dict[str, Any] = {
        "min_lr": section.min_lr,
        "max_lr": section.max_lr,
        "steps": section.steps,
        "mode": section.mode,
        "staircase": section.staircase,
        "momentum": momentum_for_test(config),
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return RangeTestSettings(**values)


def run_for_config(
    config: SweepConfig,
    device: torch.device,
    settings: RangeTestSettings,
    on_step: StepCallback | None = None,
    runner: TrialRunner | None = None,
) -> RangeTestOutcome:
    """Train the sweep's workload under the growing lr and read the curve.

    ``runner`` is the sweep's trial runner when the caller has one; else it is built here.
    """
    workload = config.workload
    trace = run_range_test(
        runner or make_runner(workload, device),
        settings,
        optimizer=workload.optimizer,
        weight_decay=workload.weight_decay,
        seed=workload.seed,
        on_step=on_step,
    )
    suggestion = suggest(
        trace.lrs,
        trace.losses,
        settings.divergence_factor,
        stopped_at_divergence=trace.stopped_early,
    )
    return RangeTestOutcome(settings, trace, suggestion)


def record(
    call: Callable[..., Any],
    experiment_id: str,
    config: SweepConfig,
    outcome: RangeTestOutcome,
    device: torch.device,
    parent_run_id: str | None = None,
) -> str:
    """Log ``outcome`` as an MLflow run in the sweep's experiment; return its id.

    ``call`` is a store's ``mlflow_call``: where the store has a tracking writer, the run and
    its plot are made there, and the process that trained never imports MLflow.
    """
    tags = {SWEEP_TAG: config.name, ROLE_TAG: RANGE_TEST_ROLE}
    if parent_run_id:
        tags[PARENT_TAG] = parent_run_id
    params = {
        "workload": config.workload.source,
        "batch_size": config.workload.batch_size,
        "optimizer": config.workload.optimizer,
        "weight_decay": config.workload.weight_decay,
        "seed": config.workload.seed,
        "device": str(device),
    }
    outcome.run_id = call(
        log_range_test,
        experiment_id,
        outcome.settings,
        outcome.trace,
        outcome.suggestion,
        params,
        tags,
    )
    return outcome.run_id
