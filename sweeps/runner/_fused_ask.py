"""Asking a fused batch: K trials sampled in an in-memory mirror of the study, started in one go.

The mirror holds the stored trials (less the waiting ones, which are taken first and keep their
numbers), so it numbers new trials as the store will and the sweep's sampler seeds each ask by
its trial's number (:mod:`sweeps.space`); big batches are asked in parallel chunks.
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from storage.bulk_trials import NewTrial
from sweeps.runner._coordination import start_under_lock
from sweeps.runner._fused_batch import FusedContext, Member

if TYPE_CHECKING:
    pass


def next_batch(context: FusedContext, n_trials: int) -> list[Member] | None:
    """Start up to ``fused`` trials under the store's lock; None when the sweep is done."""
    return start_under_lock(
        context.store,
        context.study,
        n_trials,
        context.interval,
        lambda room: _ask(context, min(context.fused, room)),
    )


def _ask(context: FusedContext, take: int) -> list[Member]:
    study = context.study
    trials = study.get_trials(deepcopy=False)
    history = [t for t in trials if t.state != TrialState.WAITING]
    waiting = len(trials) - len(history)
    # The mirror holds every trial but the waiting ones, and takes those first (each keeps its
    # number): whenever it samples, its next number is the store's next number.
    mirror = optuna.create_study(
        direction=study.direction,
        sampler=context.make_sampler(0),
        pruner=context.make_pruner(),
    )
    mirror.add_trials(history)
    members: list[Member] = []
    storage = study._storage
    writer, _ = context.writers()
    with warnings.catch_warnings():  # heartbeats are ours (Heartbeats), as in the single path
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        for _ in range(min(take, waiting)):
            trial = study.ask()  # an enqueued trial: its params are fixed
            schedule = context.space.suggest(trial)
            template = optuna.trial.create_trial(
                state=TrialState.RUNNING, params=trial.params, distributions=trial.distributions
            )
            shadow_id = mirror._storage.create_new_trial(mirror._study_id, template)
            shadow = optuna.Trial(mirror, shadow_id)
            trial.set_user_attr("deepspeed_params", schedule)
            trial.set_user_attr("worker", context.worker)
            storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
            members.append(Member(trial._trial_id, trial.number, shadow, schedule, api=trial))
        sampled = []
        sampling = time.perf_counter()
        count = take - len(members)
        if context.sampling is not None and context.sampling.chunked(count):
            first = len(trials)
            for found in context.sampling.sample(history, study.direction, first, count):
                template = optuna.trial.create_trial(
                    state=TrialState.RUNNING,
                    params=found.params,
                    distributions=found.distributions,
                )
                shadow_id = mirror._storage.create_new_trial(mirror._study_id, template)
                sampled.append((optuna.Trial(mirror, shadow_id), found.schedule))
        else:
            for _ in range(count):
                shadow = mirror.ask()
                sampled.append((shadow, context.space.suggest(shadow)))
        context.last_sample_s = time.perf_counter() - sampling
        attrs = [{"deepspeed_params": plan, "worker": context.worker} for _, plan in sampled]
        if writer is not None:
            new = [
                NewTrial(shadow.params, shadow.distributions, attr)
                for (shadow, _), attr in zip(sampled, attrs, strict=True)
            ]
            for (shadow, schedule), started in zip(
                sampled, writer.start(study._study_id, new), strict=True
            ):
                members.append(Member(started.trial_id, started.number, shadow, schedule))
        else:
            for (shadow, schedule), attr in zip(sampled, attrs, strict=True):
                template = optuna.trial.create_trial(
                    state=TrialState.RUNNING,
                    params=shadow.params,
                    distributions=shadow.distributions,
                    user_attrs=attr,
                )
                trial_id = storage.create_new_trial(study._study_id, template_trial=template)
                trial = optuna.Trial(study, trial_id)
                storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
                members.append(Member(trial_id, trial.number, shadow, schedule, api=trial))
    for member in members:
        member.handle = f"trial-{member.number}-{member.trial_id}"
    return members
