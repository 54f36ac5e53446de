"""A trial created but never given a heartbeat (an outage mid-ask) does not block a sweep."""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable, Iterator

import optuna
import pytest
from optuna.trial import TrialState

from storage import StoreSpec, open_store
from storage.trial_queries import count_by_state, rdb_storage
from storage.trial_recording import trial_recorder
from storage.trial_times import optuna_now
from sweeps.runner import LOST_REASON, Heartbeats, fail_stale, fail_trials_without_heartbeat


@pytest.fixture(params=["UTC", "Etc/GMT-5", "Etc/GMT+7"])
def zone(request: pytest.FixtureRequest) -> Iterator[str]:
    """The process's local time zone for one test (UTC+5 and UTC-7 are where a mix-up shows)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = str(request.param)
    time.tzset()
    yield str(request.param)
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_only_old_trials_without_heartbeat_are_failed(
    new_spec: Callable[..., StoreSpec], zone: str
) -> None:
    """In any time zone: a trial just asked (stored in Optuna's own time convention) is young."""
    with open_store(new_spec()) as store:
        storage = store.heartbeat_storage(2, 3)
        study = optuna.create_study(study_name="lost", storage=storage)
        old_start = optuna_now() - datetime.timedelta(seconds=60)
        lost = storage.create_new_trial(
            study._study_id,
            optuna.trial.create_trial(state=TrialState.RUNNING),
        )
        with storage.engine.begin() as connection:
            from sqlalchemy import text

            connection.execute(
                text("update trials set datetime_start = :at where trial_id = :id"),
                {"at": old_start, "id": lost},
            )
        beating = study.ask()
        storage.record_heartbeat(beating._trial_id)
        fresh = study.ask()  # started just now, no heartbeat yet: still within grace
        assert fail_trials_without_heartbeat(study, 3) == [0]
        states = {t.number: t.state for t in study.get_trials()}
        assert states == {0: TrialState.FAIL, 1: TrialState.RUNNING, 2: TrialState.RUNNING}
        assert study.get_trials()[0].user_attrs["failure_reason"] == LOST_REASON
        assert fresh.number == 2
        # Counting goes to the database (one GROUP BY), through Optuna's cache wrapper.
        assert rdb_storage(study) is not None
        found = count_by_state(study)
        assert (found["fail"], found["running"], found["complete"]) == (1, 2, 0)


def test_a_worker_never_fails_its_own_live_trial_as_stale(
    new_spec: Callable[..., StoreSpec],
) -> None:
    """A loaded machine can starve the heartbeat thread past the grace; the stale check beats
    this process's own trials first, so only other workers' silent trials are failed."""
    with open_store(new_spec()) as store:
        storage = store.heartbeat_storage(1, 1)
        study = optuna.create_study(study_name="starved", storage=storage)
        mine, theirs = study.ask(), study.ask()
        for trial in (mine, theirs):
            storage.record_heartbeat(trial._trial_id)
        # An interval no thread reaches in this test: the beating thread is as good as starved.
        beats = Heartbeats(trial_recorder(study), [mine._trial_id], interval=3600)
        try:
            time.sleep(2.5)  # past the 1 s grace for both trials
            fail_stale(study)
        finally:
            beats.stop()
        states = {t.number: t.state for t in study.get_trials()}
        assert states[mine.number] == TrialState.RUNNING
        assert states[theirs.number] == TrialState.FAIL
