"""A store outage every worker sat through is not taken for the other workers' deaths."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import optuna
import psycopg
import pytest
from optuna.trial import TrialState
from sqlalchemy import make_url
from sqlalchemy.exc import OperationalError

from storage import StoreSpec, open_store
from storage.errors import StoreUnavailable
from sweeps.runner import fail_stale
from sweeps.runner._contact import CONTACT, StoreContact
from sweeps.runner._coordination import _StaleWatcher, sweep_lock


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_round_trip_stuck_past_an_interval_holds_checks_back_for_a_grace() -> None:
    clock = Clock()
    contact = StoreContact(clock)
    assert contact.may_judge_others()  # no sweep watched: nothing held back
    contact.watch(interval=10, grace=20)
    with contact.round_trip():
        clock.now += 9  # slow, not an outage
    assert contact.may_judge_others()
    with contact.round_trip():
        clock.now += 11
        assert not contact.may_judge_others()  # stuck now, seen by another thread
    clock.now += 19
    assert not contact.may_judge_others()
    clock.now += 1
    assert contact.may_judge_others()


def test_a_failing_round_trip_holds_checks_back_until_a_grace_after_the_next_success() -> None:
    clock = Clock()
    contact = StoreContact(clock)
    contact.watch(interval=10, grace=20)
    with pytest.raises(ConnectionError), contact.round_trip():
        raise ConnectionError("database restarting")
    clock.now += 60
    assert not contact.may_judge_others()  # still failing, however long ago it began
    with contact.round_trip():
        clock.now += 0.1
    assert not contact.may_judge_others()
    clock.now += 20
    assert contact.may_judge_others()
    contact.unwatch()
    with pytest.raises(ConnectionError), contact.round_trip():
        raise ConnectionError("gone again")
    assert contact.may_judge_others()  # no sweep running here: not this process's business


def test_an_error_that_is_not_an_outage_holds_nothing_back() -> None:
    """A call that was wrong (a beat for a trial another worker finished, say) says nothing
    about whether the store is there: it must not stop this worker failing dead trials."""
    contact = StoreContact(Clock())
    contact.watch(interval=10, grace=20)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError), contact.round_trip():
        raise optuna.exceptions.UpdateFinishedTrialError("trial 3 is already finished")
    assert contact.may_judge_others()
    with pytest.raises(OperationalError), contact.round_trip():
        raise OperationalError("select 1", {}, Exception("server closed the connection"))
    assert not contact.may_judge_others()


def test_a_stopping_worker_still_honours_the_outage_it_sat_through() -> None:
    """A sweep's last stale check runs after its watcher stopped watching: an outage that just
    ended must still hold it back, or it fails the workers whose beats the outage stopped."""
    clock = Clock()
    contact = StoreContact(clock)
    contact.watch(interval=10, grace=20)
    with pytest.raises(ConnectionError), contact.round_trip():
        raise ConnectionError("database restarting")
    clock.now += 30
    with contact.round_trip():
        clock.now += 0.1
    contact.unwatch()
    assert not contact.may_judge_others()
    clock.now += 20
    assert contact.may_judge_others()


def test_a_database_away_behind_a_storage_proxy_is_an_outage() -> None:
    """Through a proxy every failed call arrives as ``StoreUnavailable``, whether the proxy or
    the database behind it is away."""
    contact = StoreContact(Clock())
    contact.watch(interval=10, grace=20)
    with pytest.raises(StoreUnavailable), contact.round_trip():
        raise StoreUnavailable("the storage proxy at onecycle://127.0.0.1:7077 did not answer")
    assert not contact.may_judge_others()


@pytest.fixture
def watched() -> Iterator[None]:
    """This process watches its store as a running sweep does: 1 s heartbeats, 2 s grace."""
    CONTACT.watch(1, 2)
    yield
    CONTACT.unwatch()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_live_workers_trial_outlives_a_stall_of_the_database(
    new_spec: Callable[..., StoreSpec], watched: None
) -> None:
    """The database stalls (a table lock) while another worker's trial runs: the check that
    waited through the stall fails nothing, nor do checks within the grace after it; a worker
    that stays silent a whole grace later is failed."""
    with open_store(new_spec()) as store:
        storage = store.heartbeat_storage(1, 2)
        study = optuna.create_study(study_name="stalled", storage=storage)
        theirs = study.ask()
        storage.record_heartbeat(theirs._trial_id)
        time.sleep(2.5)  # their last beat is past the grace: it looks dead
        url = make_url(store.spec.optuna_url).set(drivername="postgresql", query={})
        checked: list[bool] = []
        with psycopg.connect(url.render_as_string(hide_password=False)) as blocker:
            blocker.execute("lock table trials in access exclusive mode")
            waiting = threading.Thread(target=lambda: checked.append(fail_stale(study)))
            waiting.start()
            time.sleep(1.5)  # the stall: longer than a heartbeat interval
        waiting.join(timeout=30)
        assert checked == [False]
        storage.record_heartbeat(theirs._trial_id)  # the live worker beats again
        assert fail_stale(study) is False  # within the grace after the stall
        assert study.get_trials()[0].state == TrialState.RUNNING
        time.sleep(2.5)  # now it stays silent past the grace, and the store answers at once
        assert fail_stale(study) is True
        assert study.get_trials()[0].state == TrialState.FAIL


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_the_stale_watcher_fails_dead_trials_only_under_the_sweep_lock(
    new_spec: Callable[..., StoreSpec],
) -> None:
    """Another worker looks for queued retries and creates its trial under the sweep lock: a
    retry this worker's watcher queued between the two would be left waiting for ever, so the
    watcher waits for the lock."""
    with open_store(new_spec()) as store:
        storage = store.heartbeat_storage(1, 2)
        study = optuna.create_study(study_name="watched", storage=storage)
        theirs = study.ask()
        storage.record_heartbeat(theirs._trial_id)
        time.sleep(2.5)  # their last beat is past the grace: it is dead
        watcher = _StaleWatcher(store, study, 1)
        try:
            with sweep_lock(store, study):  # another worker starting a trial, slowly
                time.sleep(2)
                assert study.get_trials()[0].state == TrialState.RUNNING
            deadline = time.monotonic() + 20
            while study.get_trials()[0].state == TrialState.RUNNING:
                assert time.monotonic() < deadline, "the watcher never failed the dead trial"
                time.sleep(0.2)
            assert study.get_trials()[0].state == TrialState.FAIL
        finally:
            watcher.stop()
