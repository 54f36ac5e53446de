"""Trials written in bulk read back through Optuna exactly as trials written by its API."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import create_engine

from storage import StoreSpec, open_store
from storage.bulk_trials import BulkTrialWriter, Finish, NewTrial
from storage.errors import StoreError

pytestmark = pytest.mark.versions

DISTRIBUTIONS = {
    "cycle_max_lr": FloatDistribution(1e-4, 1.0, log=True),
    "cycle_first_step_size": IntDistribution(10, 100),
    "optimizer": CategoricalDistribution(["sgd", "adamw"]),
}


def _params(i: int) -> dict[str, object]:
    return {
        "cycle_max_lr": 10 ** (-3 + i / 7),
        "cycle_first_step_size": 10 + 3 * i,
        "optimizer": ["sgd", "adamw"][i % 2],
    }


def _study(store: object, name: str) -> optuna.Study:
    return optuna.create_study(study_name=name, storage=store.optuna_storage)  # type: ignore[attr-defined]


def _writer(study: optuna.Study) -> BulkTrialWriter:
    backend = getattr(study._storage, "_backend", study._storage)
    writer = BulkTrialWriter.for_engine(backend.engine)
    assert writer is not None
    return writer


def _comparable(trial: FrozenTrial) -> tuple[object, ...]:
    return (
        trial.number,
        trial.state,
        trial.values,
        trial.params,
        trial.distributions,
        trial.user_attrs,
        {k: repr(v) for k, v in trial.intermediate_values.items()},  # nan == nan
        trial.datetime_complete is not None,
    )


OUTCOMES: list[tuple[TrialState, float | None, list[tuple[int, float]], dict[str, object]]] = [
    (TrialState.COMPLETE, 0.25, [(10, 0.5), (20, 0.3)], {"steps": 40, "best": 0.25}),
    (TrialState.PRUNED, None, [(10, 0.9), (20, math.nan)], {}),
    (TrialState.FAIL, None, [], {"failure_reason": "diverged: loss is inf"}),
    (TrialState.COMPLETE, math.inf, [(5, -math.inf)], {"samples_to_target": None}),
    (TrialState.PRUNED, None, [(10, 0.9), (20, 0.7)], {}),  # its value: the last report
]


def test_bulk_trials_read_back_like_api_trials(new_spec: Callable[..., StoreSpec]) -> None:
    with open_store(new_spec()) as store:
        api, bulk = _study(store, "api"), _study(store, "bulk")
        # The API path: what Optuna's storage and study.tell leave behind for the same params
        # and outcomes.
        for i, (state, value, steps, attrs) in enumerate(OUTCOMES):
            template = optuna.trial.create_trial(
                state=TrialState.RUNNING,
                params=_params(i),
                distributions=DISTRIBUTIONS,
                user_attrs={"worker": "w1"},
            )
            trial_id = api._storage.create_new_trial(api._study_id, template)
            for step, reported in steps:
                api._storage.set_trial_intermediate_value(trial_id, step, reported)
            for key, attr in attrs.items():
                api._storage.set_trial_user_attr(trial_id, key, attr)
            api.tell(i, value, state=state)  # trial number i
        writer = _writer(bulk)
        count = len(OUTCOMES)
        new = [NewTrial(_params(i), DISTRIBUTIONS, {"worker": "w1"}) for i in range(count)]
        started = writer.start(bulk._study_id, new)
        assert [s.number for s in started] == list(range(count))
        running = bulk.get_trials(states=(TrialState.RUNNING,))
        assert [t.number for t in running] == list(range(count))  # the cache sees new trials
        recorded = writer.finish(
            [
                Finish(s.trial_id, state.name, value, steps, attrs)
                for s, (state, value, steps, attrs) in zip(started, OUTCOMES, strict=True)
            ]
        )
        assert recorded == [s.trial_id for s in started]
        ours, theirs = bulk.get_trials(), api.get_trials()
        assert [_comparable(t) for t in ours] == [_comparable(t) for t in theirs]
        for mine, reference in zip(ours, theirs, strict=True):
            assert mine.datetime_start is not None and reference.datetime_start is not None
            assert abs((mine.datetime_start - reference.datetime_start).total_seconds()) < 60
        # A fresh process (no cache) reads the same.
        fresh = optuna.load_study(study_name="bulk", storage=store.spec.optuna_url)
        assert [_comparable(t) for t in fresh.get_trials()] == [_comparable(t) for t in theirs]
        assert bulk.best_trial.number == 0
        assert ours[4].state == TrialState.PRUNED and ours[4].value == 0.7


def test_numbers_continue_after_api_trials_and_finished_trials_are_left_alone(
    new_spec: Callable[..., StoreSpec],
) -> None:
    with open_store(new_spec()) as store:
        study = _study(store, "mixed")
        study.ask()  # number 0, RUNNING, through the API
        writer = _writer(study)
        started = writer.start(study._study_id, [NewTrial({}, {}) for _ in range(3)])
        assert [s.number for s in started] == [1, 2, 3]
        assert study.ask().number == 4  # the API numbers after the bulk trials
        # Another worker failed trial 1 as stale: finishing it again changes nothing.
        study._storage.set_trial_state_values(started[0].trial_id, TrialState.FAIL)
        recorded = writer.finish(
            [Finish(s.trial_id, "COMPLETE", 1.0 + i) for i, s in enumerate(started)]
        )
        assert recorded == [started[1].trial_id, started[2].trial_id]
        states = {t.number: t.state for t in study.get_trials()}
        assert states == {
            0: TrialState.RUNNING,
            1: TrialState.FAIL,
            2: TrialState.COMPLETE,
            3: TrialState.COMPLETE,
            4: TrialState.RUNNING,
        }
        assert study.get_trials()[1].values is None


def test_heartbeats_are_what_optunas_stale_check_reads(
    new_spec: Callable[..., StoreSpec],
) -> None:
    with open_store(new_spec()) as store:
        study = _study(store, "beats")
        writer = _writer(study)
        started = writer.start(study._study_id, [NewTrial({}, {}) for _ in range(2)])
        watcher = optuna.storages.RDBStorage(
            store.spec.optuna_url, heartbeat_interval=1, grace_period=1
        )
        assert watcher._get_stale_trial_ids(study._study_id) == []  # a first beat at the start
        time.sleep(2.2)
        assert sorted(watcher._get_stale_trial_ids(study._study_id)) == [
            s.trial_id for s in started
        ]
        writer.beat([started[0].trial_id])
        assert watcher._get_stale_trial_ids(study._study_id) == [started[1].trial_id]
        watcher.engine.dispose()


def test_refuses_a_nan_value_and_an_unknown_state(new_spec: Callable[..., StoreSpec]) -> None:
    with open_store(new_spec()) as store:
        study = _study(store, "bad")
        writer = _writer(study)
        (started,) = writer.start(study._study_id, [NewTrial({}, {})])
        with pytest.raises(StoreError, match="value: must not be NaN"):
            writer.finish([Finish(started.trial_id, "COMPLETE", math.nan)])
        with pytest.raises(StoreError, match="state: must be one of"):
            writer.finish([Finish(started.trial_id, "WAITING")])
        # Nothing was half-written: the trial is still RUNNING with no value.
        (trial,) = study.get_trials()
        assert trial.state == TrialState.RUNNING and trial.values is None


def test_unknown_schema_falls_back() -> None:
    engine = create_engine("sqlite://")
    assert BulkTrialWriter.for_engine(engine) is None
