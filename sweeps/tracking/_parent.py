"""What happens to a sweep's parent run: ended, reopened, discarded, summarised.

Each function takes the MLflow client first and returns plain data, so a worker runs it in its
tracking writer (``Store.mlflow_call``) and never imports MLflow itself; this module imports
neither torch nor the runner, so the writer does not either.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from storage.redact import scrub
from storage.sweep_records import SweepStatus
from sweeps.errors import one_line
from sweeps.tracking._sweep import log_sweep_summary
from sweeps.tracking._tags import FAILURE_TAG

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)

#: The parent run's status for each way a sweep ends.
PARENT_STATUS: dict[SweepStatus, str] = {
    "finished": "FINISHED",
    "failed": "FAILED",
    "stopped": "KILLED",
}
#: On the parent run: how many finished trials its summary counts.
SUMMARY_TAG = "onecycle.summary"


def end_parent(client: Any, parent: str | None, status: SweepStatus, reason: str) -> None:
    """End a sweep's parent run as ``status`` says, with ``reason`` on it."""
    if not parent:
        return
    client.set_tag(parent, FAILURE_TAG, scrub(one_line(reason)))
    client.set_terminated(parent, PARENT_STATUS[status])


def discard_parent(client: Any, experiment: str, parent: str) -> None:
    """End and delete a parent run whose process lost the race to create its sweep.

    Its range test's run, if it ran one, goes with it: nothing of the losing process is left
    in the experiment the winner's sweep uses.
    """
    children = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    for run in [*children, client.get_run(parent)]:
        if run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, "KILLED")
        client.delete_run(run.info.run_id)


def reopen_parent(client: Any, parent: str) -> None:
    """The parent run RUNNING again, without the reason it ended (a deleted one stays so)."""
    run = client.get_run(parent)
    if run.info.status != "RUNNING" and run.info.lifecycle_stage == "active":
        if FAILURE_TAG in run.data.tags:
            client.delete_tag(parent, FAILURE_TAG)
        client.update_run(parent, "RUNNING")


def write_summary(
    client: Any,
    parent: str,
    trials: list[FrozenTrial],
    directions: list[str],
    best: dict[str, Any] | None,
    counts: tuple[int, float | None],
) -> None:
    """The summary of ``trials`` on the parent run, which ends FINISHED.

    ``counts`` is (finished trials, best value). A summary of as many finished trials already
    there is not written again; one that fails to write is forgiven once another worker's
    summary of the same trials is found (two workers finishing at once, no lock between them).
    """
    finished, best_value = counts
    run = client.get_run(parent)
    if _summary_of(run) >= finished:  # a resume found nothing more to run
        if run.info.status != "FINISHED":
            client.set_terminated(parent, "FINISHED")
        return
    try:
        log_sweep_summary(client, parent, _study_of(trials, directions), best)
        if best_value is not None:
            client.log_metric(parent, "best_value", best_value)
        client.set_tag(parent, SUMMARY_TAG, json.dumps({"finished": finished}))
        client.set_terminated(parent, "FINISHED")
    except Exception:
        for _ in range(10):  # the winner may still be writing
            if _summarised(client, parent, finished):
                return
            time.sleep(0.5)
        raise


def log_parent_metrics(client: Any, parent: str, values: dict[str, float], step: int) -> None:
    """``values`` logged on the parent run at ``step`` (a fused batch's bookkeeping figures).

    Figures for the record, not worth failing a sweep: an error is logged, not raised (a
    posted call's error would fail the worker's next sync).
    """
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, step) for key, value in values.items()]
    try:
        client.log_batch(parent, metrics=metrics)
    except Exception as error:
        log.warning("could not log the fused batch's figures: %s", one_line(str(error)))


def _study_of(trials: list[FrozenTrial], directions: list[str]) -> optuna.Study:
    """An in-memory study of ``trials``, for the plots (the writer has no Optuna storage)."""
    import optuna
    from optuna.study import StudyDirection

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(directions=[StudyDirection[d] for d in directions])
    finally:
        optuna.logging.set_verbosity(verbosity)
    study.add_trials(trials)
    return study


def _summary_of(run: Any) -> int:
    """How many finished trials the summary on ``run`` counts (-1: none written)."""
    try:
        return int(json.loads(run.data.tags.get(SUMMARY_TAG, "{}")).get("finished", -1))
    except (TypeError, ValueError):
        return -1


def _summarised(client: Any, parent: str, finished: int) -> bool:
    """Whether the parent run is FINISHED with the summary of ``finished`` trials (or more)."""
    run = client.get_run(parent)
    return run.info.status == "FINISHED" and _summary_of(run) >= finished
