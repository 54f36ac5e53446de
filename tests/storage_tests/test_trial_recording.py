"""Both trial recorders (Optuna's API, the bulk writers) leave the same trials and runs behind."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from storage import StoreSpec, open_store
from storage.bulk_runs import NewRun
from storage.bulk_trials import Finish, NewTrial
from storage.tracking import InlineTracking
from storage.trial_recording import run_recorder, running_trial, trial_recorder

pytestmark = pytest.mark.versions

DISTRIBUTIONS = {
    "cycle_max_lr": FloatDistribution(1e-4, 1.0, log=True),
    "cycle_first_step_size": IntDistribution(10, 100),
}
STATES = ["COMPLETE", "PRUNED", "FAIL", "COMPLETE", "PRUNED"]


def _params(i: int) -> dict[str, object]:
    return {"cycle_max_lr": 10 ** (-3 + i / 5), "cycle_first_step_size": 10 + 7 * i}


def _comparable(trial: FrozenTrial) -> tuple[object, ...]:
    return (
        trial.number,
        trial.state,
        trial.values,
        trial.params,
        trial.user_attrs,
        {k: repr(v) for k, v in trial.intermediate_values.items()},  # nan == nan
        trial.datetime_complete is not None,
    )


def _record(study: optuna.Study, bulk: bool) -> str:
    """An enqueued trial asked through the study, four started in a batch, all beaten, given
    runs and finished (one of them failed as stale first, by another worker)."""
    study.enqueue_trial(_params(0))
    recorder = trial_recorder(study, bulk=bulk)
    asked = recorder.ask()
    asked.trial.suggest_float("cycle_max_lr", 1e-4, 1.0, log=True)
    asked.trial.suggest_int("cycle_first_step_size", 10, 100)
    asked.trial.set_user_attr("worker", "w1")
    new = [NewTrial(_params(i), DISTRIBUTIONS, {"worker": "w1"}) for i in range(1, 5)]
    started = recorder.start(new)
    assert [asked.number] + [s.number for s in started] == [0, 1, 2, 3, 4]
    ids = [asked.trial_id] + [s.trial_id for s in started]
    assert [t.number for t in study.get_trials(states=(TrialState.RUNNING,))] == [0, 1, 2, 3, 4]
    recorder.beat(ids)
    stale = optuna.storages.fail_stale_trials  # reads the heartbeats the recorder wrote
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        stale(study)
    assert len(study.get_trials(states=(TrialState.RUNNING,))) == 5  # all alive
    recorder.attach_runs({trial_id: f"run-{i}" for i, trial_id in enumerate(ids)})
    study.tell(4, state=TrialState.FAIL)  # another worker's verdict; ours is ignored
    outcomes = [
        Finish(
            trial_id,
            state,
            0.1 * i if state == "COMPLETE" else None,
            [(10, 0.5 + i), (20, math.nan if i == 1 else 0.4 + i)],
            {"failure_reason": "diverged"} if state == "FAIL" else {"steps": 20},
        )
        for i, (trial_id, state) in enumerate(zip(ids, STATES, strict=True))
    ]
    recorded: set[int] = set()
    recorder.finish(outcomes, recorded)
    assert recorded == set(ids)
    return type(recorder).__name__


def test_the_api_and_bulk_recorders_leave_the_same_trials(
    new_spec: Callable[..., StoreSpec],
) -> None:
    with open_store(new_spec()) as store:
        made = {}
        for bulk in (False, True):
            study = optuna.create_study(study_name=f"bulk-{bulk}", storage=store.optuna_storage)
            made[bulk] = _record(study, bulk)
        assert made == {False: "_ApiTrials", True: "_BulkTrials"}
        fresh = {
            bulk: optuna.load_study(study_name=f"bulk-{bulk}", storage=store.spec.optuna_url)
            for bulk in (False, True)
        }
        api, ours = fresh[False].get_trials(), fresh[True].get_trials()
        assert [_comparable(t) for t in ours] == [_comparable(t) for t in api]
        assert [t.state.name for t in ours] == [*STATES[:4], "FAIL"]
        assert ours[1].value is None  # pruned, its last report NaN: no value (as study.tell)
        assert [t.user_attrs["mlflow_run_id"] for t in ours] == [f"run-{i}" for i in range(5)]
        assert "steps" not in ours[4].user_attrs  # the stale trial kept its verdict


def test_a_mirror_trial_prunes_without_asking_the_sampler() -> None:
    class Refusing(optuna.samplers.RandomSampler):
        def sample_independent(self, *args: object, **kwargs: object) -> object:
            raise AssertionError("the sampler was asked")

    mirror = optuna.create_study(sampler=Refusing(), pruner=optuna.pruners.NopPruner())
    trial = running_trial(mirror, _params(3), DISTRIBUTIONS)
    trial.report(0.5, 10)
    assert not trial.should_prune()
    assert trial.params == _params(3) and trial.number == 0


def test_the_api_and_bulk_run_recorders_open_the_same_runs(
    new_spec: Callable[..., StoreSpec], tmp_path: Path
) -> None:
    spec = new_spec()
    with open_store(spec) as store:
        client = store.mlflow
        experiment = client.create_experiment(
            f"runs-{time.time_ns()}", artifact_location=str(tmp_path / "artifacts")
        )
        tracking = InlineTracking(spec.mlflow_uri)
        views = {}
        for bulk in (False, True):
            recorder = run_recorder(tracking, spec.mlflow_uri, bulk=bulk)
            run = NewRun("trial-0001", {"onecycle.trial_number": "1"}, {"cycle_max_lr": 0.1})
            opened = recorder.open(experiment, {f"h-{bulk}": run})
            tracking.log_metrics(f"h-{bulk}", [("lr", 0.1, 0, 0)])  # adopted by the tracking
            found = client.get_run(opened[f"h-{bulk}"])
            views[type(recorder).__name__] = (
                found.info.run_name,
                found.info.status,
                found.data.params,
                {k: v for k, v in found.data.tags.items() if not k.startswith("mlflow.")},
                found.data.metrics,
            )
        tracking.close()
        assert views["_ApiRuns"] == views["_BulkRuns"]
        assert views["_BulkRuns"][2] == {"cycle_max_lr": "0.1"}
