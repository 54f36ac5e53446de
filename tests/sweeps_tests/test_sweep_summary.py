"""The sweep's parent run: summary artifacts when the sweep ends."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from sweeps.tracking import log_sweep_summary
from tests.sweeps_tests.conftest import SCHEDULE, TrackedSweep


def test_parent_run_gets_history_importances_and_best_config(
    tracked_sweep: Callable[..., TrackedSweep],
) -> None:
    sweep = tracked_sweep()
    objective = sweep.objective(epochs=1)

    def suggest(trial: optuna.Trial) -> dict[str, float]:
        return dict(
            SCHEDULE, cycle_max_lr=trial.suggest_float("cycle_max_lr", 0.05, 0.3, log=True)
        )

    objective.suggest = suggest
    sweep.study.optimize(objective, n_trials=3)
    best = {
        "scheduler": {
            "type": "OneCycle",
            "params": sweep.study.best_trial.user_attrs["deepspeed_params"],
        }
    }
    written = log_sweep_summary(sweep.store.mlflow, sweep.target.parent_run_id, sweep.study, best)
    assert written == [
        "optimization_history.png",
        "param_importances.png",
        "best_deepspeed_config.json",
    ]
    artifacts = {a.path for a in sweep.store.mlflow.list_artifacts(sweep.target.parent_run_id)}
    assert set(written) <= artifacts
    parent = sweep.store.mlflow.get_run(sweep.target.parent_run_id)
    counts = json.loads(parent.data.tags["onecycle.trials"])
    assert counts == {"running": 0, "waiting": 0, "complete": 3, "pruned": 0, "fail": 0}
    sweep.target.tracking.sync()
    children = sweep.store.mlflow.search_runs(
        [sweep.target.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{sweep.target.parent_run_id}'",
    )
    assert len(children) == 3
    assert {c.data.tags["onecycle.trial_number"] for c in children} == {"0", "1", "2"}


def test_the_summary_of_trials_with_equal_values_warns_nothing(
    tracked_sweep: Callable[..., TrackedSweep],
) -> None:
    """Equal values make Optuna's importance evaluator warn that the importances are equal
    (the plot shows it): the sweep's last lines on the terminal stay the sweep's own."""
    sweep = tracked_sweep()
    study = optuna.create_study(direction="maximize")
    space = {"cycle_max_lr": FloatDistribution(0.05, 0.3)}
    for lr in (0.1, 0.2):
        study.add_trial(create_trial(params={"cycle_max_lr": lr}, distributions=space, value=0.75))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = log_sweep_summary(sweep.store.mlflow, sweep.target.parent_run_id, study, None)
    assert "param_importances.png" in written
    assert not [str(w.message) for w in caught if "optuna" in w.filename]
