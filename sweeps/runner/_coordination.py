"""Workers sharing a sweep: the store lock around starting trials, heartbeats, stale trials.

Starting a trial is "count, then create" under a store-wide lock, so concurrent workers never
start more than ``n_trials``. A running trial sends heartbeats from its own thread; a trial whose
worker stopped sending them is failed (and retried once), and one that never sent any is failed
after the same grace. Outages of the database are ridden out for a while. See
``docs/coordination.md``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import ClassVar, TypeVar

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import InterfaceError, OperationalError

from storage import Store
from storage.disk_full import is_disk_full
from storage.errors import StoreUnavailable
from storage.store_locks import store_lock, sweep_lock_name
from storage.trial_queries import (
    count_by_state,
    rdb_storage,
    running_without_heartbeat,
    stale_trial_ids,
)
from storage.trial_recording import TrialRecorder, trial_recorder
from storage.trial_times import optuna_now
from sweeps.errors import UsageError
from sweeps.runner._contact import CONTACT
from sweeps.tracking import FAILURE_TAG

log = logging.getLogger(__name__)


T = TypeVar("T")


HEARTBEAT_ENV = "ONECYCLE_HEARTBEAT_S"


#: ``0`` sends a worker's trial writes through Optuna's API, one trial at a time.
OPTUNA_BULK_ENV = "ONECYCLE_OPTUNA_BULK"


STALE_REASON = "worker stopped sending heartbeats (killed or lost); the trial was retried"

#: The reason on a run that ended while its trial's outcome never reached Optuna.
UNRECORDED_REASON = (
    "the run ended but its trial's outcome never reached Optuna (the worker stopped or the "
    "store failed first); the trial was failed as stale and retried"
)


#: Heartbeat intervals without a beat after which a running trial is stale (or lost, when it
#: never beat): two, so a beat delayed by a busy machine or database is not taken for a death.
STALE_AFTER_INTERVALS = 2

LOST_REASON = "started but never sent a heartbeat (its worker lost the database or died)"

#: Held while this process starts trials and while its watcher fails stale ones, so a retry the
#: watcher queues is never missed by an ask already under way (it would be left WAITING).
_STARTING = threading.Lock()


def heartbeat_interval() -> int:
    """Seconds between a running trial's heartbeats (``ONECYCLE_HEARTBEAT_S``, default 10)."""
    raw = os.environ.get(HEARTBEAT_ENV, "10")
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(
            f"{HEARTBEAT_ENV} must be a whole number of seconds, got {raw!r}"
        ) from None
    if value < 1:
        raise UsageError(f"{HEARTBEAT_ENV} must be >= 1, got {value}")
    return value


def recorder_for(study: optuna.Study) -> TrialRecorder:
    """The worker's trial recorder, chosen once (see :mod:`storage.trial_recording`).

    The bulk writer unless the store's tables are not the known ones or
    ``ONECYCLE_OPTUNA_BULK=0``.
    """
    return trial_recorder(study, bulk=os.environ.get(OPTUNA_BULK_ENV, "1") != "0")


def stale_trial_handler(store: Store) -> Callable[[optuna.Study, FrozenTrial], None]:
    """Retry a trial whose worker died, once, and close its MLflow run as FAILED.

    A run that did end (FINISHED: its trial trained, but the tell never got in) is made FAILED
    too, so the run agrees with its trial (see ``_agreement``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=1)

    def on_stale(study: optuna.Study, trial: FrozenTrial) -> None:
        retry(study, trial)
        run_id = trial.user_attrs.get("mlflow_run_id")
        if not run_id:
            return
        client = store.mlflow
        status = client.get_run(run_id).info.status
        if status != "FAILED":
            client.set_tag(
                run_id, FAILURE_TAG, STALE_REASON if status == "RUNNING" else UNRECORDED_REASON
            )
            client.set_terminated(run_id, "FAILED")

    return on_stale


def riding_out_outages(what: str, action: Callable[[], T], patience_s: float = 60.0) -> T:
    """Run ``action``, retrying while the database is unreachable (a restart, a failover).

    Gives up after ``patience_s`` seconds with :class:`storage.StoreUnavailable`. A full disk
    is raised at once: it stays full until someone frees space.
    """
    deadline = time.monotonic() + patience_s
    pause = 0.5
    while True:
        try:
            return action()
        except (OperationalError, InterfaceError, optuna.exceptions.StorageInternalError) as error:
            if is_disk_full(error):
                raise
            if time.monotonic() + pause > deadline:
                raise StoreUnavailable(
                    f"cannot {what}: the database stayed unreachable for {patience_s:.0f} s "
                    f"({type(error).__name__})"
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def fail_trials_without_heartbeat(study: optuna.Study, grace_s: int) -> list[int]:
    """Fail RUNNING trials that never recorded a heartbeat and started over ``grace_s`` ago.

    A trial is created (``ask``) and then gets its first heartbeat; a database outage or a
    killed worker between the two leaves a RUNNING trial that Optuna's stale check never sees
    (it only looks at trials with a heartbeat), and that would hold a place in the sweep for
    ever. Such a trial never trained, so it is failed, not retried. Returns their numbers.
    """
    storage = rdb_storage(study)
    if storage is None:
        return []
    failed = []
    for trial_id, number in running_without_heartbeat(
        study, optuna_now() - timedelta(seconds=grace_s)
    ):
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            storage.set_trial_user_attr(trial_id, "failure_reason", LOST_REASON)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            failed.append(number)
    if failed:
        log.warning("failed trials %s: started but never sent a heartbeat", failed)
    return failed


def start_under_lock(
    store: Store,
    study: optuna.Study,
    n_trials: int,
    interval: int,
    start: Callable[[int], T],
    before_start: Callable[[], None] | None = None,
) -> T | None:
    """``start(room)`` once there is room for more trials; None when the sweep is done.

    Counting and starting happen under the store's lock, so concurrent workers see each
    other's new trials; ``room`` is how many more may start now (``n_trials`` minus finished
    and running ones). A worker waits while the running trials would fill the sweep.
    ``before_start`` runs under the lock first (it reopens a sweep that a stopping worker
    ended, see :mod:`sweeps.runner._ending`).
    """
    while True:
        with sweep_lock(store, study), _STARTING:
            fail_dead_trials(study, interval)
            found = count_by_state(study)
            finished = found["complete"] + found["pruned"]
            if finished >= n_trials:
                return None
            room = n_trials - finished - found["running"]
            if room > 0:
                if before_start is not None:
                    before_start()
                return start(room)
        time.sleep(min(1.0, interval / 2))


def sweep_lock(store: Store, study: optuna.Study) -> contextlib.AbstractContextManager[None]:
    """The lock a sweep's workers start trials under (and decide, as one stops, who ends it)."""
    name, url = sweep_lock_name(study.study_name), store.spec.optuna_url
    return store_lock(store.spec, url, name, store.kept_engine)


def fail_dead_trials(study: optuna.Study, interval: int) -> None:
    """Fail (and retry) trials whose worker stopped beating, and those that never beat."""
    if fail_stale(study):
        fail_trials_without_heartbeat(study, STALE_AFTER_INTERVALS * interval)


class Heartbeats:
    """Record running trials' heartbeats every ``interval`` seconds, from a thread of its own.

    One trial or a fused batch alike: ``trial_ids`` are beaten by the worker's recorder (one
    UPDATE for all of them through the bulk writer, else one by one through the storage). A
    missed beat is retried at the next interval. Every live instance is also beaten just before
    this process checks for stale trials (:func:`beat_all`), so a loaded machine that starves
    the beating thread never lets a worker fail its own live trial as stale.
    """

    _live: ClassVar[set[Heartbeats]] = set()
    _live_lock = threading.Lock()

    def __init__(self, recorder: TrialRecorder, trial_ids: Sequence[int], interval: int) -> None:
        self._stop = threading.Event()
        self._beating = threading.Lock()
        self._recorder = recorder
        self._ids = list(trial_ids)

        def beat() -> None:
            while not self._stop.wait(interval):
                self.beat_now()

        with Heartbeats._live_lock:
            Heartbeats._live.add(self)
        self._thread = threading.Thread(target=beat, name="onecycle-heartbeats", daemon=True)
        self._thread.start()

    def beat_now(self) -> None:
        """One heartbeat for every trial of this instance; a failure waits for the next one."""
        with self._beating, contextlib.suppress(Exception), CONTACT.round_trip():
            self._recorder.beat(self._ids)

    @classmethod
    def beat_all(cls) -> None:
        """Beat every live instance of this process now (before a stale-trial check)."""
        with cls._live_lock:
            live = list(cls._live)
        for heartbeats in live:
            heartbeats.beat_now()

    def stop(self) -> None:
        with Heartbeats._live_lock:
            Heartbeats._live.discard(self)
        self._stop.set()
        self._thread.join(timeout=5)


def fail_stale(study: optuna.Study) -> bool:
    """Optuna's stale-trial check, after this process's own trials were beaten just now.

    False, checking nothing, while this process's own contact with the store is too recent to
    tell a dead worker from one that sat through the same outage (:mod:`._contact`).
    """
    Heartbeats.beat_all()
    if CONTACT.interval is not None:
        with CONTACT.round_trip():
            count_by_state(study)
    if not CONTACT.may_judge_others():
        log.debug("stale-trial check held back: the store was away within the grace")
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return True


class _StaleWatcher:
    """Fail trials of dead workers promptly, even while this worker is busy with a long trial.

    Once it sees a stale trial it checks again under the sweep's lock, as workers' starts do: a
    retry queued between another worker's look for waiting retries and its new trial would be
    left waiting for ever. Only then, so that the lock is not taken every half interval.
    """

    def __init__(self, store: Store, study: optuna.Study, interval: int) -> None:
        self._stop = threading.Event()
        CONTACT.watch(interval, STALE_AFTER_INTERVALS * interval)

        def watch() -> None:
            while not self._stop.wait(max(0.5, interval / 2)):
                try:
                    if not stale_trial_ids(study):
                        continue
                    with sweep_lock(store, study), _STARTING:
                        fail_stale(study)
                except Exception as error:  # retried at the next check
                    log.warning("checking for stale trials failed: %s", error)

        self._thread = threading.Thread(target=watch, name="onecycle-stale-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        CONTACT.unwatch()
