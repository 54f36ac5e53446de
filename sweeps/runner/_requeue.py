"""Trials interrupted under SLURM are queued again with the same params.

SIGTERM from SLURM means the job was preempted, requeued, cancelled or ran out of time, not
that the configuration failed: the interrupted trial stays FAIL with its reason (its run ended
as it was), and a new trial with its params is queued for the next worker to take first, as
Optuna's own retry does for a stale trial. A worker stopped by Ctrl+C on a workstation keeps
today's behaviour: its user stopped it, and the resumed sweep samples afresh.

A configuration is retried at most :data:`MAX_RETRIES` times: one that never finishes within
``--time`` would otherwise be queued, started and stopped for ever.
"""

from __future__ import annotations

from collections.abc import Iterable

import optuna
from optuna.trial import FrozenTrial, TrialState

#: User attribute of a queued retry: the number of the trial it repeats.
RETRY_OF = "retry_of"
#: User attribute of a queued retry: how many times its configuration was retried so far.
RETRY = "retry"
#: How a trial's ``failure_reason`` starts when Ctrl+C or SIGTERM ended it.
INTERRUPTED = "KeyboardInterrupt"
#: How many times one configuration is queued again.
MAX_RETRIES = 3


def interrupted_trials(study: optuna.Study, worker: str) -> list[FrozenTrial]:
    """The trials ``worker`` failed because it was interrupted (Ctrl+C or SIGTERM)."""
    return [
        trial
        for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if trial.user_attrs.get("worker") == worker and was_interrupted(trial)
    ]


def was_interrupted(trial: FrozenTrial) -> bool:
    """Whether Ctrl+C or SIGTERM ended ``trial`` (its ``failure_reason`` says so)."""
    return str(trial.user_attrs.get("failure_reason", "")).startswith(INTERRUPTED)


def requeue(study: optuna.Study, trials: Iterable[FrozenTrial]) -> list[int]:
    """Queue each trial's params again, once, up to :data:`MAX_RETRIES` times; those queued."""
    queued = {
        trial.user_attrs.get(RETRY_OF)
        for trial in study.get_trials(deepcopy=False)
        if RETRY_OF in trial.user_attrs
    }
    numbers = []
    for trial in trials:
        retry = int(trial.user_attrs.get(RETRY, 0)) + 1
        if trial.number in queued or retry > MAX_RETRIES:
            continue
        study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number, RETRY: retry})
        numbers.append(trial.number)
    return numbers
