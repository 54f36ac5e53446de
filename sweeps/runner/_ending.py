"""How a sweep ends: one exit path that sets the sweep's status and ends its parent MLflow run.

Whatever ends a worker's :func:`~sweeps.runner.run_sweep` passes through :func:`sweep_ending`:

- every trial finished: ``finished``, the parent run FINISHED with the sweep's summary;
- failures past ``search.max_failure_rate``: ``failed``, the parent FAILED;
- Ctrl+C or SIGTERM: ``stopped``, the parent KILLED;
- any other error (the store failing, a fused batch's exception, a refused setting):
  ``failed``, the parent FAILED.

The first two are facts of the store that every worker of the sweep sees alike, so whichever
worker sees one ends the sweep. The last two befall one worker: it ends the sweep only when no
other worker has a trial running (those go on, and end it themselves), and a worker that starts
a trial of an ended sweep reopens it, as ``onecycle run`` does when it resumes one. Both are
decided under the lock trials are started under, so a worker that stops and one that starts a
trial never leave a running sweep marked ended. The parent run of a failed or stopped sweep
carries the reason as ``onecycle.failure_reason``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from storage import Store, SweepRecord
from storage.errors import StoreError
from storage.redact import scrub
from storage.sweep_records import SweepStatus
from sweeps.errors import SweepsError, TooManyFailures, one_line
from sweeps.phases import phase
from sweeps.runner._coordination import fail_dead_trials, sweep_lock
from sweeps.runner._outcome import close_parent, outcome_of
from sweeps.runner._requeue import interrupted_trials, requeue
from sweeps.runner._worker_tag import requeues_when_stopped
from sweeps.tracking import end_parent, reopen_parent

log = logging.getLogger(__name__)

STOPPED_REASON = "stopped by Ctrl+C or SIGTERM; `onecycle run` the file again to resume it"


@dataclass
class Ending:
    """What the exit path knows of the worker it ends; the runner fills in the study."""

    store: Store
    record: SweepRecord
    worker: str
    #: The worker's study (with heartbeats), once opened; else the ending loads one.
    study: optuna.Study | None = None
    #: The worker's heartbeat interval, once read (to fail dead workers' trials first).
    interval: int = 0


@contextmanager
def sweep_ending(store: Store, record: SweepRecord, worker: str) -> Iterator[Ending]:
    """Run a worker's part of a sweep; however it ends, record the sweep's status and its run's.

    The error that ended the worker is raised again; one that recording the end raises in turn
    (the store may be what failed) is logged, not raised in its place.
    """
    ending = Ending(store, record, worker)
    try:
        yield ending
    except TooManyFailures as error:
        _record_end(ending, "failed", str(error), whole_sweep=True)
        raise
    except KeyboardInterrupt:
        if requeues_when_stopped(ending.worker):
            _requeue_interrupted(ending)
        _record_end(ending, "stopped", STOPPED_REASON, whole_sweep=False)
        raise
    except BaseException as error:
        _record_end(ending, "failed", end_reason(error), whole_sweep=False)
        raise
    try:
        _finish(ending)
    except BaseException as error:  # done, but its summary could not be written
        _record_end(ending, "failed", end_reason(error), whole_sweep=True)
        raise


def end_reason(error: BaseException) -> str:
    """What ended the worker, as the parent run's reason: our own errors need no class name."""
    if isinstance(error, (SweepsError, StoreError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _requeue_interrupted(ending: Ending) -> None:
    """SLURM stopped this worker: its interrupted trials are retried (``_requeue``)."""
    try:
        numbers = requeue(_study(ending), interrupted_trials(_study(ending), ending.worker))
    except Exception as error:  # the store may be what failed: the sweep still ends
        reason = scrub(one_line(str(error)))
        log.warning("could not queue the interrupted trials again: %s", reason)
        return
    if numbers:
        log.warning("SLURM stopped this worker: trials %s are queued again", numbers)


def _record_end(ending: Ending, status: SweepStatus, reason: str, whole_sweep: bool) -> None:
    try:
        _end(ending, status, reason, whole_sweep)
    except Exception as error:  # the store may be what failed: the first error is the news
        log.warning(
            "could not record that sweep %r %s (its status or its parent run may still show "
            "running; `onecycle run` resumes it): %s",
            ending.record.name,
            status,
            scrub(one_line(f"{type(error).__name__}: {error}", 300)),
        )


def _end(ending: Ending, status: SweepStatus, reason: str, whole_sweep: bool) -> None:
    """Give the sweep ``status`` and end its parent run, if this worker is the one to."""
    store, record = ending.store, ending.record
    study = _study(ending)
    done = False
    with sweep_lock(store, study):
        if not whole_sweep:
            if ending.study is not None and ending.interval:
                fail_dead_trials(study, ending.interval)
            if _running_elsewhere(study, ending.worker):
                return  # the other workers go on; the last of them ends the sweep
            done = outcome_of(study, _n_trials(record)).done
        if not done:
            _mark(ending, status, reason)
            return
    try:
        _finish(ending)  # stopped after its last trial was recorded: the sweep is finished
    except Exception as error:  # its summary could not be written either
        _mark(ending, status, f"{reason}; the summary could not be written: {end_reason(error)}")


def _mark(ending: Ending, status: SweepStatus, reason: str) -> None:
    ending.store.sweeps.update(ending.record.name, status=status)
    ending.store.mlflow_call(end_parent, ending.record.mlflow_parent_run_id, status, reason)


def _finish(ending: Ending) -> None:
    with phase("summary"):
        ending.store.sweeps.update(ending.record.name, status="finished")
        close_parent(ending.store, ending.record, _study(ending))


def _study(ending: Ending) -> optuna.Study:
    if ending.study is None:
        ending.study = optuna.load_study(
            study_name=ending.record.study_name, storage=ending.store.optuna_storage
        )
    return ending.study


def _n_trials(record: SweepRecord) -> int:
    return int(record.config.get("search", {}).get("n_trials", 0))


def _running_elsewhere(study: optuna.Study, worker: str) -> bool:
    """Whether a trial of another worker is running (this worker's own have been told)."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return any(trial.user_attrs.get("worker") != worker for trial in running)


def reopen(store: Store, record: SweepRecord) -> SweepRecord:
    """The sweep running again and its parent run RUNNING, without the reason it ended."""
    if record.status != "running":
        record = store.sweeps.update(record.name, status="running")
    if record.mlflow_parent_run_id:
        store.mlflow_call(reopen_parent, record.mlflow_parent_run_id)
    return record


def reopen_if_ended(store: Store, name: str) -> None:
    """Reopen sweep ``name`` if a stopping worker ended it (called as a trial starts)."""
    record = store.sweeps.get(name)
    if record.status != "running":
        reopen(store, record)
