"""A sweep's outcome: its trial counts, its best trial, the summary on its parent run, progress."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

import schedulers
from storage import Store, SweepRecord
from storage.store_locks import store_lock
from storage.trial_queries import count_by_state
from sweeps.tracking import log_sweep_summary


@dataclass
class SweepOutcome:
    """What a worker leaves behind."""

    finished: int
    complete: int
    pruned: int
    failed: int
    best_value: float | None
    best_params: dict[str, Any] | None
    done: bool


def outcome_of(study: optuna.Study, n_trials: int) -> SweepOutcome:
    found = count_by_state(study)
    finished = found["complete"] + found["pruned"]
    best_value: float | None = None
    best_params: dict[str, Any] | None = None
    if found["complete"]:
        best = study.best_trial
        best_value = best.value
        best_params = best.user_attrs.get("deepspeed_params")
    return SweepOutcome(
        finished=finished,
        complete=found["complete"],
        pruned=found["pruned"],
        failed=found["fail"],
        best_value=best_value,
        best_params=best_params,
        done=finished >= n_trials,
    )


def best_block(study: optuna.Study) -> dict[str, Any] | None:
    """DeepSpeed's ``{"scheduler": {...}}`` for the best trial, every key spelled out."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    params = study.best_trial.user_attrs["deepspeed_params"]
    return {
        "scheduler": {"type": "OneCycle", "params": schedulers.with_defaults("OneCycle", params)}
    }


SUMMARY_TAG = "onecycle.summary"


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


def close_parent(store: Store, record: SweepRecord, study: optuna.Study) -> None:
    """Write the sweep's summary to its parent run once, whichever worker finishes last.

    Every worker of a finished sweep gets here, often at the same moment: under the store's
    lock the first one writes and the others find the summary of the same trials in place.
    Where the store has no lock to offer (an MLflow server over HTTP beside another store), a
    write that loses the race is forgiven once the winner's summary is found.
    """
    client = store.mlflow
    parent = record.mlflow_parent_run_id
    if not parent:
        return
    with store_lock(store.spec, store.spec.optuna_url, f"summary-{study.study_name}"):
        outcome = outcome_of(study, 0)
        run = client.get_run(parent)
        if _summary_of(run) >= outcome.finished:  # a resume found nothing more to run
            if run.info.status != "FINISHED":
                client.set_terminated(parent, "FINISHED")
            return
        try:
            log_sweep_summary(client, parent, study, best_block(study))
            if outcome.best_value is not None:
                client.log_metric(parent, "best_value", outcome.best_value)
            client.set_tag(parent, SUMMARY_TAG, json.dumps({"finished": outcome.finished}))
            client.set_terminated(parent, "FINISHED")
        except Exception:
            for _ in range(10):  # the winner may still be writing
                if _summarised(client, parent, outcome.finished):
                    return
                time.sleep(0.5)
            raise


class Progress:
    """What the runner reports while it works; the CLI draws it with rich."""

    def sweep(self, outcome: SweepOutcome, n_trials: int) -> None:
        """After every trial."""

    def trial_started(self, number: int, total_steps: int) -> None:
        """A trial began."""

    def batch_started(self, numbers: list[int], total_steps: int) -> None:
        """A fused batch of trials began (one progress line for all of them)."""
        self.trial_started(numbers[0], total_steps)

    def step(self, number: int, steps_done: int) -> None:
        """A trial advanced (called every few updates)."""
