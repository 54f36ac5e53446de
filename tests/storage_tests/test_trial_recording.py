"""Both trial recorders (Optuna's API, the bulk writers) leave the same trials and runs behind."""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from storage import StoreSpec, open_store
from storage.bulk_runs import BulkRunWriter, NewRun
from storage.bulk_trials import Finish, NewTrial
from storage.errors import StoreUnavailable
from storage.interrupts import install
from storage.tracking import InlineTracking, ProcessTracking
from storage.trial_recording import (
    planned_recorder,
    run_recorder,
    running_trial,
    trial_recorder,
)

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


def _new_experiment(client: Any, prefix: str, tmp_path: Path) -> str:
    """A new experiment (a unique name) whose artifacts go under ``tmp_path``."""
    location = str(tmp_path / "artifacts")
    return str(client.create_experiment(f"{prefix}-{time.time_ns()}", artifact_location=location))


def test_the_api_and_bulk_run_recorders_open_the_same_runs(
    new_spec: Callable[..., StoreSpec], tmp_path: Path
) -> None:
    spec = new_spec()
    with open_store(spec) as store:
        client = store.mlflow
        experiment = _new_experiment(client, "runs", tmp_path)
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


def _experiment_named(client: Any, name: str, location: str) -> str:
    """The experiment ``name`` (made if needed): what a planned recorder is told to find."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    return str(client.create_experiment(name, artifact_location=location))


def _no_experiment(client: Any, name: str) -> str:
    raise ValueError(f"no experiment {name}")


def test_planned_runs_are_made_by_the_writer_with_the_ids_given_here(
    new_spec: Callable[..., StoreSpec], tmp_path: Path
) -> None:
    spec = new_spec()
    name = f"planned-{time.time_ns()}"
    with open_store(spec) as store:
        tracking = InlineTracking(spec.mlflow_uri)
        named = (_experiment_named, (name, str(tmp_path / "artifacts")))
        recorder = planned_recorder(tracking, spec.mlflow_uri, named)
        assert recorder is not None
        parent = recorder.open("", {"parent": NewRun("sweep x", {"onecycle.role": "sweep"})})
        run = NewRun("trial-0000", {"mlflow.parentRunId": parent["parent"]}, {"lr": 0.1})
        opened = recorder.open("", {"trial": run})
        tracking.log_metrics("trial", [("lr", 0.1, 0, 0)])
        tracking.end_run("trial", "FINISHED")
        tracking.close().raise_errors()
        client = store.mlflow
        found = client.get_run(opened["trial"])
        experiment = client.get_experiment_by_name(name)
        assert experiment is not None and found.info.experiment_id == experiment.experiment_id
        assert found.info.status == "FINISHED" and found.data.params == {"lr": "0.1"}
        assert found.data.tags["mlflow.parentRunId"] == parent["parent"]
        assert found.info.artifact_uri == f"{tmp_path / 'artifacts'}/{opened['trial']}/artifacts"
        assert client.get_run(parent["parent"]).info.status == "FAILED"  # never ended: closed
        # A planned run whose experiment cannot be made is an error at close, not a hang.
        failing = InlineTracking(spec.mlflow_uri)
        broken = planned_recorder(failing, spec.mlflow_uri, (_no_experiment, ("x",)))
        assert broken is not None
        broken.open("", {"t": NewRun("trial-0001")})
        with pytest.raises(StoreUnavailable, match="create_planned: post: no experiment x"):
            failing.close().raise_errors()
    assert planned_recorder(tracking, "http://127.0.0.1:5000", named) is None


def test_runs_opened_as_an_interrupt_lands_are_adopted_and_never_left_running(
    new_spec: Callable[..., StoreSpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl+C just after the bulk writer committed a run, before the tracking was told of it,
    is held until the run is adopted; the client path's runs are adopted by the writer itself,
    so an owner interrupted while it waits for their ids leaves none behind either. Every run
    ends FAILED when the writer closes (it was never ended)."""
    spec = new_spec()
    with open_store(spec) as store:
        client = store.mlflow
        experiment = _new_experiment(client, "interrupted", tmp_path)
        tracking = ProcessTracking(spec.mlflow_uri)
        try:
            api = run_recorder(tracking, spec.mlflow_uri, bulk=False)
            api.open(experiment, {"api": NewRun("trial-0000", params={"lr": 0.1})})
            created = BulkRunWriter.create

            def create_then_interrupt(self: BulkRunWriter, *args: Any) -> list[str]:
                ids = created(self, *args)
                os.kill(os.getpid(), signal.SIGINT)  # the runs exist; nobody holds them yet
                return ids

            monkeypatch.setattr(BulkRunWriter, "create", create_then_interrupt)
            handlers = {stop: signal.getsignal(stop) for stop in (signal.SIGINT, signal.SIGTERM)}
            install()
            try:
                bulk = run_recorder(tracking, spec.mlflow_uri, bulk=True)
                with pytest.raises(KeyboardInterrupt):
                    bulk.open(experiment, {"bulk": NewRun("trial-0001")})
            finally:
                for stop, handler in handlers.items():
                    signal.signal(stop, handler)
        finally:
            report = tracking.close()
        assert not report.errors, report.errors
        runs = client.search_runs([experiment])
        assert sorted(run.info.run_name for run in runs) == ["trial-0000", "trial-0001"]
        assert [run.info.status for run in runs] == ["FAILED", "FAILED"]
        assert all("onecycle.failure_reason" in run.data.tags for run in runs)
        assert [run.data.params for run in runs if run.info.run_name == "trial-0000"] == [
            {"lr": "0.1"}
        ]
