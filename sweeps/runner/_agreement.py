"""A trial's Optuna state and its MLflow run's status agree again after any failure.

A trial is told to Optuna and its run is ended by the tracking writer, two stores and two
writes; a full disk, a lost database or a killed process between them leaves them apart (a
trial COMPLETE whose run the writer closed FAILED because its end could not be written, a run
RUNNING for a trial long finished). Each worker, when it starts on a sweep (``onecycle run``
resuming it, ``onecycle worker`` joining it), makes every finished trial's run agree.

The rule: Optuna's state decides. It is what the sampler learned from and what ``best``, the
counts and ``max_failure_rate`` read, and a trial is told COMPLETE only after its training
ended and its metric was checked; a run's status only says whether its last writes got in.
So the run is ended with the status its trial's state maps to (COMPLETE -> FINISHED, PRUNED ->
KILLED, FAIL -> FAILED), tagged with the state and with ``onecycle.repaired`` saying what it
was. A COMPLETE trial's run gets the ``objective`` metric from Optuna when its own final
metrics never arrived (its other final metrics and its schedule plot may be missing), and
loses the failure reason the writer gave it; a FAIL trial's run gets the trial's reason. A run
still RUNNING is left alone until its trial has been finished for the stale-trial grace: its
worker's writer may be ending it at this moment.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage import Store, SweepRecord
from storage.run_statuses import run_statuses, statuses_in_tables
from sweeps.tracking import FAILURE_TAG, PRUNED_TAG, RUN_STATUS, STATE_TAG

log = logging.getLogger(__name__)

REPAIRED_TAG = "onecycle.repaired"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def make_runs_agree(
    store: Store, study: optuna.Study, record: SweepRecord, grace_s: float
) -> list[int]:
    """End each finished trial's run with the status its Optuna state maps to; their numbers.

    See the module docstring for the rule. Runs that already agree are not touched.
    """
    trials = [
        trial
        for trial in study.get_trials(deepcopy=False, states=FINISHED)
        if trial.user_attrs.get("mlflow_run_id")
    ]
    if not trials:
        return []  # a new sweep: no round trip to the writer (which may still be starting)
    ids = [str(trial.user_attrs["mlflow_run_id"]) for trial in trials]
    # A database store answers with one query here; a tracking server through the client.
    statuses = statuses_in_tables(store.spec.mlflow_uri, ids)
    if statuses is None:
        parent = record.mlflow_parent_run_id or ""
        statuses = store.mlflow_call(run_statuses, store.spec.mlflow_uri, ids, parent)
    repaired = []
    cutoff = datetime.now() - timedelta(seconds=grace_s)  # Optuna's trial times: naive, local
    for trial, run_id in zip(trials, ids, strict=True):
        status, wanted = statuses.get(run_id), RUN_STATUS[trial.state.name]
        if status is None or status == wanted:
            continue
        if status == "RUNNING" and (trial.datetime_complete or cutoff) > cutoff:
            continue  # its worker may be ending it right now
        store.mlflow_call(_repair, trial, run_id, status, wanted)
        repaired.append(trial.number)
    if repaired:
        log.warning(
            "sweep %s: the MLflow runs of trials %s disagreed with Optuna; ended as their "
            "trials' states say",
            record.name,
            repaired,
        )
    return repaired


def _repair(client: Any, trial: FrozenTrial, run_id: str, status: str, wanted: str) -> None:
    """End the run as its trial's state says, tagged with what it was (in the writer)."""
    from mlflow.entities import RunTag

    state = trial.state.name
    run = client.get_run(run_id)
    tags = {
        STATE_TAG: state,
        REPAIRED_TAG: f"the run was {status}; its trial is {state} in Optuna, which decides",
    }
    if state == "PRUNED":
        tags[PRUNED_TAG] = "true"
    if state == "FAIL":
        reason = trial.user_attrs.get("failure_reason") or run.data.tags.get(FAILURE_TAG)
        tags[FAILURE_TAG] = str(reason or "the trial failed before its run was ended")[:5000]
    if state == "COMPLETE":
        was = run.data.tags.get(FAILURE_TAG)
        if was:
            tags[REPAIRED_TAG] += f" (the run's failure reason was: {was})"[:4000]
            with contextlib.suppress(Exception):
                client.delete_tag(run_id, FAILURE_TAG)
        if "objective" not in run.data.metrics and trial.value is not None:
            client.log_metric(run_id, "objective", float(trial.value))
    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
    client.set_terminated(run_id, wanted)
