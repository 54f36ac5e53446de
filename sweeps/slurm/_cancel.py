"""``onecycle cancel NAME``: end a sweep's SLURM jobs and leave nothing of theirs RUNNING.

``scancel`` sends each worker SIGTERM: it fails its trial as interrupted, queues it again
(:mod:`sweeps.runner._requeue`) and ends its run, as a worker stopped any other way does. A
worker SLURM kills before it is done (after the cluster's ``KillWait``) leaves its trial
RUNNING, or failed but not queued again: once the jobs are gone, such trials are failed here
and queued again, and their runs ended FAILED. The sweep is then ``stopped``; ``onecycle
submit`` resumes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage import Store, SweepRecord
from storage.trial_recording import fail_left_trial
from sweeps.errors import SweepsError, UsageError
from sweeps.runner._agreement import make_runs_agree
from sweeps.runner._outcome import outcome_of
from sweeps.runner._requeue import RETRY_OF, requeue, was_interrupted
from sweeps.runner._worker_tag import slurm_job_of
from sweeps.slurm._jobs import jobs_of
from sweeps.slurm._tools import active_jobs, scancel
from sweeps.tracking import end_parent

CANCELLED_REASON = (
    "KeyboardInterrupt: cancelled by `onecycle cancel`; its SLURM job ended before the "
    "trial was closed"
)
STOPPED_REASON = "cancelled by `onecycle cancel`; `onecycle submit` the file again to resume it"


@dataclass
class Cancelled:
    """What ``cancel`` did."""

    #: The jobs that were still queued or running, now cancelled.
    jobs: list[str]
    #: Trials left RUNNING by a killed worker, failed here.
    closed: list[int] = field(default_factory=list)
    #: Trials queued again (by their workers or here).
    queued: int = 0


#: Seconds between two looks at the queue while the jobs leave it.
POLL_S = 2.0


def cancel(
    store: Store,
    record: SweepRecord,
    wait_s: float,
    waiting: Callable[[set[str]], None] | None = None,
) -> Cancelled:
    """Cancel the sweep's jobs, wait up to ``wait_s`` for them to leave, close what they left."""
    study = optuna.load_study(study_name=record.study_name, storage=store.optuna_storage)
    jobs = jobs_of(study)
    if not jobs:
        raise UsageError(
            f"NAME: sweep {record.name!r} has no SLURM jobs (`onecycle submit --slurm` starts "
            "them; stop local workers with Ctrl+C)"
        )
    waiting_before = _queued(study)
    active = active_jobs(jobs)
    cancelled = sorted(active, key=int)
    scancel(active)
    deadline = time.monotonic() + wait_s
    while active:
        if waiting is not None:
            waiting(active)
        if time.monotonic() > deadline:
            raise SweepsError(
                f"cancel: SLURM jobs {', '.join(sorted(active))} were still there after "
                f"{wait_s:.0f} s; their trials stay RUNNING until the jobs end (run cancel again)"
            )
        time.sleep(POLL_S)
        active = active_jobs(active)
    closed = _close_left(study, set(jobs))
    make_runs_agree(store, study, record, grace_s=0)
    n_trials = int(record.config["search"]["n_trials"])
    still_running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not still_running and not outcome_of(study, n_trials).done:  # a finished one stays so
        store.sweeps.update(record.name, status="stopped")
        end_parent(store.mlflow, record.mlflow_parent_run_id, "stopped", STOPPED_REASON)
    return Cancelled(cancelled, closed, _queued(study) - waiting_before)


def _close_left(study: optuna.Study, jobs: set[str]) -> list[int]:
    """Fail the trials the jobs' workers left RUNNING; queue those and any they failed again.

    A worker killed between failing its trial and queuing it again leaves a FAIL trial that
    :func:`~sweeps.runner._requeue.requeue` has not seen; a worker stopped while it took a
    queued retry may fail it before tagging it as its own. Each is queued once.
    """
    closed = [
        trial
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if _job_of(trial) in jobs and fail_left_trial(study, trial, CANCELLED_REASON)
    ]
    interrupted = [
        trial
        for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if (_job_of(trial) in jobs and was_interrupted(trial))
        # A retry a stopping worker took and failed before tagging it never trained.
        or (RETRY_OF in trial.user_attrs and "worker" not in trial.user_attrs)
    ]
    requeue(study, interrupted)
    return [trial.number for trial in closed]


def _job_of(trial: FrozenTrial) -> str | None:
    return slurm_job_of(str(trial.user_attrs.get("worker", "")))


def _queued(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
