"""A trial, tracked: one child run with every update's lr and momentum, and its outcome."""

from __future__ import annotations

from collections.abc import Callable

import optuna
import pytest
from mlflow.entities import RunStatus

from schedulers.schedules import OneCycleSchedule
from sweeps.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG
from sweeps.trials import TrialDiverged
from tests.sweeps_tests.conftest import SCHEDULE, TrackedSweep

pytestmark = pytest.mark.slow  # whole tracked sweeps; see pyproject's markers

Make = Callable[..., TrackedSweep]


def history(sweep: TrackedSweep, run_id: str, key: str) -> list[tuple[int, float]]:
    values = sweep.store.mlflow.get_metric_history(run_id, key)
    return sorted((m.step, m.value) for m in values)


def test_completed_trial_logs_every_update_equal_to_the_closed_form(tracked_sweep: Make) -> None:
    sweep = tracked_sweep()
    sweep.study.optimize(sweep.objective(epochs=5), n_trials=1)
    report = sweep.target.tracking.sync()
    assert report.errors == {}
    trial = sweep.study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    run_id = trial.user_attrs["mlflow_run_id"]
    run = sweep.store.mlflow.get_run(run_id)
    assert run.info.status == RunStatus.to_string(RunStatus.FINISHED)
    steps = trial.user_attrs["steps"]
    assert steps == 5 * 22
    closed = OneCycleSchedule(**SCHEDULE)
    lr, momentum = history(sweep, run_id, "lr"), history(sweep, run_id, "momentum")
    assert [s for s, _ in lr] == list(range(steps)) == [s for s, _ in momentum]
    assert all(value == closed.lr(step) for step, value in lr)
    assert all(value == closed.momentum(step) for step, value in momentum)
    assert len(history(sweep, run_id, "train_loss")) == steps
    assert len(history(sweep, run_id, "val_accuracy")) == 5
    metrics = run.data.metrics
    assert metrics["objective"] == trial.value
    assert metrics["steps"] == steps and metrics["samples"] == steps * 64
    assert metrics["best_val_accuracy"] >= trial.value
    assert metrics["wall_time_s"] > 0
    params = run.data.params
    for key, value in SCHEDULE.items():
        assert params[key] == str(value)
    for key in (
        "cycle_second_stair_count",
        "cycle_momentum",
        "decay_mom_rate",
        "workload",
        "batch_size",
        "optimizer",
        "seed",
        "device",
    ):
        assert key in params
    tags = run.data.tags
    assert tags["mlflow.parentRunId"] == sweep.target.parent_run_id
    assert tags["onecycle.study"] == "test-study" and tags["onecycle.trial_number"] == "0"
    assert tags["onecycle.trial_state"] == "COMPLETE"
    artifacts = {a.path for a in sweep.store.mlflow.list_artifacts(run_id)}
    assert {"lr_momentum.png", "deepspeed_scheduler.json"} <= artifacts
    experiment = sweep.store.mlflow.get_experiment(sweep.target.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def test_adamw_momentum_is_beta1(tracked_sweep: Make) -> None:
    sweep = tracked_sweep()
    adam_schedule = dict(SCHEDULE, cycle_min_lr=1e-4, cycle_max_lr=1e-3)
    sweep.study.optimize(sweep.objective(adam_schedule, epochs=2, optimizer="adamw"), n_trials=1)
    sweep.target.tracking.sync()
    run_id = sweep.study.trials[0].user_attrs["mlflow_run_id"]
    closed = OneCycleSchedule(**adam_schedule)
    assert all(v == closed.momentum(s) for s, v in history(sweep, run_id, "momentum"))


def test_pruned_trial_is_killed_with_its_values_kept(tracked_sweep: Make) -> None:
    sweep = tracked_sweep(pruner=optuna.pruners.ThresholdPruner(lower=1.5))
    sweep.study.optimize(sweep.objective(epochs=5), n_trials=1)
    sweep.target.tracking.sync()
    trial = sweep.study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    run = sweep.store.mlflow.get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED"
    assert run.data.tags["pruned"] == "true"
    assert len(history(sweep, run.info.run_id, "lr")) == 22  # pruned at the first evaluation


def test_diverged_trial_is_failed_with_its_reason_and_the_sweep_goes_on(
    tracked_sweep: Make,
) -> None:
    sweep = tracked_sweep()
    wild = dict(SCHEDULE, cycle_min_lr=5.0, cycle_max_lr=50.0)
    sweep.study.optimize(sweep.objective(wild, epochs=3), n_trials=1, catch=(TrialDiverged,))
    sweep.study.optimize(sweep.objective(epochs=1), n_trials=1)
    sweep.target.tracking.sync()
    diverged, fine = sweep.study.trials
    assert diverged.state == optuna.trial.TrialState.FAIL
    assert fine.state == optuna.trial.TrialState.COMPLETE
    run = sweep.store.mlflow.get_run(diverged.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert run.data.tags["onecycle.failure_reason"].startswith("diverged: ")
    assert diverged.user_attrs["failure_reason"] == run.data.tags["onecycle.failure_reason"]
    steps = history(sweep, run.info.run_id, "train_loss")
    assert 0 < len(steps) < 3 * 22


class Boom(RuntimeError):
    pass


def test_user_code_that_raises_fails_the_run_and_keeps_what_was_logged(
    tracked_sweep: Make,
) -> None:
    sweep = tracked_sweep()
    objective = sweep.objective(epochs=3)
    make = objective.get_runner

    def exploding() -> object:
        workload = make()
        original = workload.evaluate
        calls = {"n": 0}

        def evaluate(model: object) -> dict[str, float]:
            calls["n"] += 1
            if calls["n"] == 2:
                raise Boom("evaluation exploded")
            return original(model)  # type: ignore[arg-type]

        workload.evaluate = evaluate  # type: ignore[method-assign]
        return workload

    objective.get_runner = exploding  # type: ignore[assignment]
    with pytest.raises(Boom):
        sweep.study.optimize(objective, n_trials=1)
    sweep.target.tracking.sync()
    trial = sweep.study.trials[0]
    run = sweep.store.mlflow.get_run(trial.user_attrs["mlflow_run_id"])
    assert trial.state == optuna.trial.TrialState.FAIL
    assert run.info.status == "FAILED"
    assert run.data.tags["onecycle.failure_reason"] == "Boom: evaluation exploded"
    assert len(history(sweep, run.info.run_id, "lr")) == 44
