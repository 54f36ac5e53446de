"""Asking a fused batch: K trials sampled in an in-memory mirror of the study, started in one go.

The mirror holds the stored trials (less the waiting ones, which are taken first and keep their
numbers), so it numbers new trials as the store will and the sweep's sampler seeds each ask by
its trial's number (:mod:`sweeps.space`); big batches are asked in parallel chunks.
"""

from __future__ import annotations

import time

import optuna
from optuna.trial import TrialState

from storage.bulk_trials import NewTrial
from storage.trial_recording import running_trial
from sweeps.runner._coordination import start_under_lock
from sweeps.runner._fused_batch import FusedContext, Member


def next_batch(context: FusedContext, n_trials: int) -> list[Member] | None:
    """Start up to ``fused`` trials under the store's lock; None when the sweep is done."""
    return start_under_lock(
        context.store,
        context.study,
        n_trials,
        context.interval,
        lambda room: _ask(context, min(context.fused, room)),
        context.before_start,
    )


def _ask(context: FusedContext, take: int) -> list[Member]:
    study, recorder = context.study, context.recorder
    trials = study.get_trials(deepcopy=False)
    history = [t for t in trials if t.state != TrialState.WAITING]
    waiting = len(trials) - len(history)
    # The mirror holds every trial but the waiting ones, and takes those first (each keeps its
    # number): whenever it samples, its next number is the store's next number.
    mirror = optuna.create_study(
        study_name=study.study_name,  # Hyperband's brackets hash the name with the number
        direction=study.direction,
        sampler=context.make_sampler(0),
        pruner=context.make_pruner(),
    )
    mirror.add_trials(history)
    members: list[Member] = []
    for _ in range(min(take, waiting)):
        asked = recorder.ask()  # an enqueued trial: its params are fixed
        trial = asked.trial
        schedule = context.space.suggest(trial)
        shadow = running_trial(mirror, trial.params, trial.distributions)
        trial.set_user_attr("deepspeed_params", schedule)
        trial.set_user_attr("worker", context.worker)
        members.append(Member(asked.trial_id, asked.number, shadow, schedule))
    sampled = []
    sampling = time.perf_counter()
    count = take - len(members)
    if context.sampling is not None and context.sampling.chunked(count):
        first = len(trials)
        for found in context.sampling.sample(history, study.direction, first, count):
            shadow = running_trial(mirror, found.params, found.distributions)
            sampled.append((shadow, found.schedule))
    else:
        for _ in range(count):
            shadow = mirror.ask()
            sampled.append((shadow, context.space.suggest(shadow)))
    context.last_sample_s = time.perf_counter() - sampling
    new = [
        NewTrial(
            shadow.params,
            shadow.distributions,
            {"deepspeed_params": schedule, "worker": context.worker},
        )
        for shadow, schedule in sampled
    ]
    for (shadow, schedule), started in zip(sampled, recorder.start(new), strict=True):
        members.append(Member(started.trial_id, started.number, shadow, schedule))
    for member in members:
        member.handle = f"trial-{member.number}-{member.trial_id}"
    return members
