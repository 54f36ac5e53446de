"""The 1-Cycle batch-scaling study: what happens to convergence when the batch grows K-fold.

DeepSpeed's 1-Cycle tutorial reports that a model tuned at batch b and trained at 8b needs
about 5x more samples to reach its target AUC with the same fixed lr, diverges with the lr
scaled 8x, and converges as fast as the original with a tuned 1-Cycle schedule. This module
reruns that on ``synthetic_ctr`` (the shipped study file) or on any task, a user's included,
judged by the workload's metric (AUC for the built-in):

1. **baseline**: batch b with its best fixed lr, found by a small tracked sweep;
2. at ``scale`` x b: **Fixed** (the baseline lr), **LinearScale** (``scale`` x that lr), and
   **1Cycle** with params from a sweep at the large batch (a real sweep: fused trials and
   ``auto`` bounds from the LR range test when the file asks for them);
3. every final run is tracked; the curves (the validation metric against samples seen) are
   read back from MLflow, the target is ``target_fraction`` x the baseline's final value (its
   final value / ``target_fraction`` for a metric to minimise), and each run's samples to
   reach it is compared with the baseline's.

Everything lives in one MLflow experiment under one parent run, ``study <name>``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from storage import Store
from storage.tracking import ProcessTracking
from sweeps.runner import (
    create_or_resume,
    resolve_device,
    run_params,
    run_sweep,
    workload_factory,
)
from sweeps.studies.batch_scaling._config import BatchScalingConfig
from sweeps.task import Direction
from sweeps.tracking import ROLE_TAG, SWEEP_TAG, ensure_experiment, start_parent_run
from sweeps.trials import MlflowTarget, TrainSettings, TrialDiverged, TrialObjective

CURVE_TAG = "onecycle.study_curve"
Say = Callable[[str], None]


def constant_schedule(lr: float, momentum: float) -> dict[str, Any]:
    """A OneCycle block that holds ``lr`` and ``momentum`` fixed (min = max, no decay)."""
    return {
        "cycle_min_lr": lr,
        "cycle_max_lr": lr,
        "cycle_first_step_size": 1_000_000_000,
        "cycle_min_mom": momentum,
        "cycle_max_mom": momentum,
    }


@dataclass
class Curve:
    """One final run: its schedule and what it reached, read back from MLflow."""

    label: str
    batch_size: int
    schedule: dict[str, Any]
    run_id: str
    points: list[tuple[int, float]] = field(default_factory=list)  # (samples, metric)
    diverged: str | None = None
    samples_to_target: int | None = None

    @property
    def final_value(self) -> float | None:
        """The last evaluation's metric (None if the run never evaluated)."""
        return self.points[-1][1] if self.points else None


@dataclass
class StudyResult:
    """The whole study: settings, the baseline lr, the 1-Cycle params, the four curves."""

    name: str
    parent_run_id: str
    experiment_id: str
    baseline_batch: int
    large_batch: int
    baseline_lr: float
    onecycle_params: dict[str, Any]
    target: float
    curves: list[Curve]
    wall_time_s: float
    #: The LR range test's result at the large batch, when the 1-Cycle sweep ran one.
    range_test: dict[str, Any] | None = None
    #: Samples between evaluations: the resolution of every "samples to target".
    every_samples: int = 0
    #: The metric the curves follow, and whether larger is better.
    metric: str = "val_auc"
    direction: str = "maximize"

    @property
    def metric_label(self) -> str:
        """How the report names the metric (``AUC`` for the tutorial's ``val_auc``)."""
        return "AUC" if self.metric == "val_auc" else self.metric

    def relative(self, curve: Curve) -> float | None:
        """Samples to target relative to the baseline's (None if either never reached it)."""
        base = self.curves[0].samples_to_target
        if base is None or curve.samples_to_target is None:
            return None
        return curve.samples_to_target / base


def run_study(store: Store, config: BatchScalingConfig, say: Say = print) -> StudyResult:
    """Run (or resume) the study in ``store``; every run tracked under one parent run."""
    started = time.perf_counter()
    client = store.mlflow
    experiment = ensure_experiment(client, config.name, store.spec.artifact_location)
    parent = _study_run(store, config, experiment)
    device = resolve_device(config.workload.device)
    tracking = ProcessTracking(store.spec.mlflow_uri)
    try:
        target = MlflowTarget(tracking, experiment, parent, config.name)
        say(f"1/4 baseline: best fixed lr at batch {config.workload.batch_size}")
        baseline_lr = _baseline_lr(store, config, target, device)
        say(f"    best fixed lr {baseline_lr:.4g}")
        say(f"2/4 1-Cycle sweep at batch {config.large_batch}")
        params, range_test = _onecycle_params(store, config, parent, say)
        say("3/4 final runs: Baseline, Fixed, LinearScale, 1Cycle")
        plans = [
            (
                "Baseline",
                config.workload.batch_size,
                constant_schedule(baseline_lr, config.momentum),
                1.0,
            ),
            (
                "Fixed",
                config.large_batch,
                constant_schedule(baseline_lr, config.momentum),
                config.budget_factor,
            ),
            (
                "LinearScale",
                config.large_batch,
                constant_schedule(baseline_lr * config.scale, config.momentum),
                config.budget_factor,
            ),
            ("1Cycle", config.large_batch, params, config.budget_factor),
        ]
        curves = [
            _final_run(store, config, target, device, label, batch, schedule, budget)
            for label, batch, schedule, budget in plans
        ]
        tracking.close().raise_errors()
    finally:
        tracking.close()
    base_final = curves[0].final_value
    if base_final is None:
        raise RuntimeError(
            "the baseline run produced no evaluation; the study cannot set a target"
        )
    metric, direction = _objective(config)
    maximize = direction == "maximize"
    goal = base_final * config.target_fraction if maximize else base_final / config.target_fraction
    for curve in curves:
        curve.samples_to_target = next(
            (s for s, v in curve.points if (v >= goal if maximize else v <= goal)), None
        )
    result = StudyResult(
        name=config.name,
        parent_run_id=parent,
        experiment_id=experiment,
        baseline_batch=config.workload.batch_size,
        large_batch=config.large_batch,
        baseline_lr=baseline_lr,
        onecycle_params=params,
        target=goal,
        curves=curves,
        wall_time_s=time.perf_counter() - started,
        range_test=range_test,
        every_samples=config.every_samples,
        metric=metric,
        direction=direction,
    )
    say("4/4 report")
    return result


def _study_run(store: Store, config: BatchScalingConfig, experiment: str) -> str:
    client = store.mlflow
    found = client.search_runs(
        [experiment], f"tags.`{ROLE_TAG}` = 'study' and tags.`{SWEEP_TAG}` = '{config.name}'"
    )
    if found:
        return str(found[0].info.run_id)
    payload = config.model_dump(mode="json")
    run_id = start_parent_run(client, experiment, config.name, f"{config.name}-baseline", payload)
    client.set_tag(run_id, ROLE_TAG, "study")
    client.set_tag(run_id, "mlflow.runName", f"study {config.name}")
    return run_id


def _objective(config: BatchScalingConfig) -> tuple[str, Direction]:
    """The metric the study follows and its direction: the 1-Cycle sweep's objective."""
    sweep = config.onecycle_sweep()
    return sweep.metric, sweep.objective.direction


def _settings(config: BatchScalingConfig, batch: int, budget: float) -> TrainSettings:
    metric, direction = _objective(config)
    return TrainSettings(
        epochs=max(1, math.ceil(config.workload.epochs * budget)),
        optimizer=config.workload.optimizer,
        weight_decay=config.workload.weight_decay,
        seed=config.workload.seed,
        metric=metric,
        direction=direction,
        eval_every=max(1, config.every_samples // batch),
    )


def _factory(
    config: BatchScalingConfig, batch: int, device: Any, store: Store
) -> Callable[[], Any]:
    """The workload at ``batch``; a command's baseline runs launch ``workload.command``."""
    sweep = config.onecycle_sweep()
    update: dict[str, Any] = {"batch_size": batch}
    if batch == config.workload.batch_size and config.workload.command is not None:
        update["command"] = config.workload.command
    workload = sweep.workload.model_copy(update=update)
    secrets = (store.spec.setting, store.spec.optuna_url, store.spec.mlflow_uri)
    return workload_factory(
        sweep.model_copy(update={"workload": workload}), device, secrets=secrets
    )


def _baseline_lr(
    store: Store, config: BatchScalingConfig, target: MlflowTarget, device: Any
) -> float:
    search = config.baseline_search
    study = optuna.create_study(
        study_name=f"{config.name}-baseline",
        storage=store.optuna_storage,
        direction=_objective(config)[1],
        sampler=optuna.samplers.TPESampler(seed=config.workload.seed),
        pruner=optuna.pruners.NopPruner(),  # every lr trains its whole budget
        load_if_exists=True,
    )
    batch = config.workload.batch_size

    def suggest(trial: optuna.Trial) -> dict[str, Any]:
        return constant_schedule(
            trial.suggest_float("lr", search.low, search.high, log=True), config.momentum
        )

    objective = TrialObjective(
        suggest=suggest,
        get_runner=_factory(config, batch, device, store),
        settings=_settings(config, batch, 1.0),
        run_params={**run_params(config.onecycle_sweep(), device), "batch_size": batch},
        mlflow=target,
    )
    done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
    for _ in range(max(0, search.n_trials - len(done))):
        trial = study.ask()
        try:
            value = objective(trial)
        except TrialDiverged:
            study.tell(trial, state=TrialState.FAIL)
            continue
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        study.tell(trial, value)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(
            f"no baseline lr in [{search.low}, {search.high}] trained without diverging; "
            "lower baseline_search.low"
        )
    return float(study.best_params["lr"])


def _onecycle_params(
    store: Store, config: BatchScalingConfig, parent: str, say: Say
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    sweep = config.onecycle_sweep()
    record, _ = create_or_resume(
        store, sweep, on_range_test=lambda c: say("    LR range test for the `auto` bounds")
    )
    if record.mlflow_parent_run_id:
        store.mlflow.set_tag(record.mlflow_parent_run_id, "mlflow.parentRunId", parent)
    outcome = run_sweep(store, record)
    if outcome.best_params is None:
        raise RuntimeError(f"the 1-Cycle sweep {record.name!r} finished no trial")
    say(f"    best 1-Cycle {sweep.metric} {outcome.best_value:.4f}")
    stored = store.sweeps.get(record.name).config.get("range_test") or {}
    return dict(outcome.best_params), stored.get("result")


def _final_run(
    store: Store,
    config: BatchScalingConfig,
    target: MlflowTarget,
    device: Any,
    label: str,
    batch: int,
    schedule: dict[str, Any],
    budget: float,
) -> Curve:
    # In memory, one fixed trial, never pruned.
    study = optuna.create_study(direction=_objective(config)[1], pruner=optuna.pruners.NopPruner())
    settings = _settings(config, batch, budget)
    objective = TrialObjective(
        suggest=lambda trial: dict(schedule),
        get_runner=_factory(config, batch, device, store),
        settings=settings,
        run_params={**run_params(config.onecycle_sweep(), device), "batch_size": batch},
        mlflow=target,
    )
    trial = study.ask()
    diverged: str | None = None
    try:
        objective(trial)
    except TrialDiverged:
        diverged = str(trial.user_attrs.get("failure_reason", "diverged"))
    run_id = str(trial.user_attrs["mlflow_run_id"])
    target.tracking.sync().raise_errors()
    client = store.mlflow
    client.set_tag(run_id, "mlflow.runName", f"{label} (batch {batch})")
    client.set_tag(run_id, CURVE_TAG, label)
    history = sorted(client.get_metric_history(run_id, settings.metric), key=lambda m: m.step)
    points = [((m.step + 1) * batch, float(m.value)) for m in history]
    return Curve(label, batch, schedule, run_id, points, diverged)
