"""A sweep's outcome: its trial counts, its best trial, the summary on its parent run, progress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

import schedulers
from storage import Store, SweepRecord
from storage.store_locks import store_lock, summary_lock_name
from storage.trial_queries import count_by_state
from sweeps.tracking import write_summary


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


def close_parent(store: Store, record: SweepRecord, study: optuna.Study) -> None:
    """Write the sweep's summary to its parent run once, whichever worker finishes last.

    Every worker of a finished sweep gets here, often at the same moment: under the store's
    lock the first one writes and the others find the summary of the same trials in place.
    Where the store has no lock to offer (an MLflow server over HTTP beside another store), a
    write that loses the race is forgiven once the winner's summary is found. The writing
    (plots included) runs in the tracking writer when the worker has one.
    """
    parent = record.mlflow_parent_run_id
    if not parent:
        return
    lock = summary_lock_name(study.study_name)
    with store_lock(store.spec, store.spec.optuna_url, lock, store.kept_engine):
        outcome = outcome_of(study, 0)
        store.mlflow_call(
            write_summary,
            parent,
            study.get_trials(deepcopy=False),
            [d.name for d in study.directions],
            best_block(study),
            (outcome.finished, outcome.best_value),
        )


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
