"""Recording a sweep's trials: one interface, through the libraries' APIs or the bulk writers.

A worker starts trials, keeps them alive, attaches their MLflow runs and finishes them through
a :class:`TrialRecorder`, and opens their runs through a :class:`RunRecorder`. Each has two
implementations, one through Optuna's (MLflow's) API and one through the bulk writers
(:mod:`storage.bulk_trials`, :mod:`storage.bulk_runs`), picked once per worker by
:func:`trial_recorder` and :func:`run_recorder`: the writers only where the library's tables
are the ones they know (:mod:`storage.schema_guard`). The two stores are chosen apart because
they can differ (a PostgreSQL study with an MLflow tracking server). Optuna's private corners
these need (a trial's id, the study's id and storage) are reached here and nowhere in
``sweeps``; see ``docs/architecture.md``.

Trials asked through the study (:meth:`TrialRecorder.ask`: its sampler, or an enqueued trial)
stay Optuna's: attaching their run and finishing them go through the API in both
implementations, so the study's sampler is told as ``study.tell`` tells it.
"""

from __future__ import annotations

import contextlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from storage.bulk_runs import BulkRunWriter, NewRun, create_planned, plan_run_id
from storage.bulk_trials import BulkTrialWriter, Finish, NewTrial, Started
from storage.interrupts import held
from storage.trial_queries import rdb_storage

if TYPE_CHECKING:
    from storage.tracking import Tracking

__all__ = [
    "Asked",
    "RunRecorder",
    "TrialRecorder",
    "planned_recorder",
    "run_recorder",
    "running_trial",
    "trial_recorder",
]


@dataclass(frozen=True)
class Asked:
    """A trial asked through the study: Optuna's handle on it and its id in the storage."""

    trial: optuna.Trial
    trial_id: int

    @property
    def number(self) -> int:
        """The trial's number in the study."""
        return self.trial.number


def running_trial(
    study: optuna.Study, params: Mapping[str, Any], distributions: Mapping[str, Any]
) -> optuna.Trial:
    """A new RUNNING trial of ``study`` with ``params`` fixed, its sampler not asked.

    For an in-memory mirror study that decides pruning: the trial reports and is pruned there
    like any other, while its params came from elsewhere (the stored trial, a pool process).
    """
    template = optuna.trial.create_trial(
        state=TrialState.RUNNING, params=dict(params), distributions=dict(distributions)
    )
    trial_id = study._storage.create_new_trial(study._study_id, template)
    return optuna.Trial(study, trial_id)


def fail_left_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str) -> bool:
    """Fail a RUNNING trial a killed worker left, with ``reason``; False if it had finished."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, "failure_reason", reason)
        return bool(storage.set_trial_state_values(trial._trial_id, TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


class TrialRecorder(ABC):
    """Starts, beats, attaches runs to and finishes one study's trials; one per worker."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self._storage = study._storage
        #: Trials asked through the study, by id (told with Optuna's handle on them).
        self._asked: dict[int, optuna.Trial] = {}
        #: Numbers of the trials this recorder started, by id.
        self._numbers: dict[int, int] = {}

    def ask(self) -> Asked:
        """Ask the study for its next trial (sampled, or the next enqueued one), beating once.

        The first heartbeat goes in at once: a trial that never beats is failed as lost after
        a grace period (``sweeps.runner``), so it must not wait for the heartbeat thread.
        """
        with warnings.catch_warnings():  # the heartbeats are ours, not Optuna's thread
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = self.study.ask()
        trial_id = int(trial._trial_id)
        self._storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
        self._asked[trial_id] = trial
        return Asked(trial, trial_id)

    @abstractmethod
    def start(self, trials: Sequence[NewTrial]) -> list[Started]:
        """Start ``trials`` (sampled elsewhere) as RUNNING with a first heartbeat, in order."""

    @abstractmethod
    def beat(self, trial_ids: Sequence[int]) -> None:
        """Record a heartbeat for each of ``trial_ids``."""

    def attach_runs(self, run_ids: Mapping[int, str]) -> None:
        """Record each trial's MLflow run id (user attribute ``mlflow_run_id``)."""
        for trial_id, run_id in run_ids.items():
            self._storage.set_trial_user_attr(trial_id, "mlflow_run_id", run_id)

    def finish(self, outcomes: Sequence[Finish], recorded: set[int]) -> None:
        """Record ``outcomes``, adding each trial id to ``recorded`` as it is recorded.

        A trial another worker already failed as stale is left as it is (and counts as
        recorded). When a write fails, ``recorded`` holds the trials whose outcome is in.
        """
        for outcome in outcomes:
            self._tell(outcome)
            recorded.add(outcome.trial_id)

    def _tell(self, outcome: Finish) -> None:
        """One outcome through Optuna's API: intermediate values, attributes, then the tell."""
        trial_id = outcome.trial_id
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            for step, value in outcome.intermediate:
                self._storage.set_trial_intermediate_value(trial_id, step, value)
            for key, attr in outcome.user_attrs.items():
                self._storage.set_trial_user_attr(trial_id, key, attr)
            # Told with no state, a value makes the trial COMPLETE, or FAIL when Optuna finds
            # it infeasible (NaN), as the one-trial loop always told it; skip_if_finished:
            # Optuna 5 refuses to tell a finished trial.
            state = None if outcome.state == "COMPLETE" else TrialState[outcome.state]
            self.study.tell(self._handle(trial_id), outcome.value, state, skip_if_finished=True)
        self._asked.pop(trial_id, None)
        self._numbers.pop(trial_id, None)

    def _handle(self, trial_id: int) -> optuna.Trial | int:
        """What ``study.tell`` takes for the trial: Optuna's handle, else its number."""
        if trial_id in self._asked:
            return self._asked[trial_id]
        if trial_id not in self._numbers:
            self._numbers[trial_id] = int(self._storage.get_trial_number_from_id(trial_id))
        return self._numbers[trial_id]


class _ApiTrials(TrialRecorder):
    """Every write through Optuna's storage, trial by trial (any storage Optuna supports)."""

    def start(self, trials: Sequence[NewTrial]) -> list[Started]:
        started = []
        for new in trials:
            template = optuna.trial.create_trial(
                state=TrialState.RUNNING,
                params=dict(new.params),
                distributions=dict(new.distributions),
                user_attrs=dict(new.user_attrs),
            )
            trial_id = self._storage.create_new_trial(self.study._study_id, template)
            self._storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
            self._numbers[trial_id] = int(self._storage.get_trial_number_from_id(trial_id))
            started.append(Started(trial_id, self._numbers[trial_id]))
        return started

    def beat(self, trial_ids: Sequence[int]) -> None:
        for trial_id in trial_ids:
            self._storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]


class _BulkTrials(TrialRecorder):
    """Started trials' writes in one transaction a batch (:class:`BulkTrialWriter`)."""

    def __init__(self, study: optuna.Study, writer: BulkTrialWriter) -> None:
        super().__init__(study)
        self.writer = writer

    def start(self, trials: Sequence[NewTrial]) -> list[Started]:
        return self.writer.start(self.study._study_id, trials)

    def beat(self, trial_ids: Sequence[int]) -> None:
        self.writer.beat(trial_ids)

    def attach_runs(self, run_ids: Mapping[int, str]) -> None:
        asked = {k: v for k, v in run_ids.items() if k in self._asked}
        super().attach_runs(asked)
        self.writer.set_user_attrs(
            {k: {"mlflow_run_id": v} for k, v in run_ids.items() if k not in asked}
        )

    def finish(self, outcomes: Sequence[Finish], recorded: set[int]) -> None:
        bulk = [o for o in outcomes if o.trial_id not in self._asked]
        super().finish([o for o in outcomes if o.trial_id in self._asked], recorded)
        self.writer.finish(bulk)
        recorded.update(outcome.trial_id for outcome in bulk)


def trial_recorder(study: optuna.Study, bulk: bool = True) -> TrialRecorder:
    """The recorder for ``study``: the bulk writer if ``bulk`` and the tables allow, else API."""
    storage = rdb_storage(study)
    writer = BulkTrialWriter.for_engine(storage.engine) if bulk and storage is not None else None
    return _ApiTrials(study) if writer is None else _BulkTrials(study, writer)


class RunRecorder(ABC):
    """Opens trials' MLflow runs, with their tags and params, and hands them to the tracking."""

    def __init__(self, tracking: Tracking) -> None:
        self.tracking = tracking

    @abstractmethod
    def open(self, experiment_id: str, runs: Mapping[str, NewRun]) -> dict[str, str]:
        """Create ``{handle: run}`` as RUNNING, adopted by the tracking; ``{handle: run id}``."""


class _ApiRuns(RunRecorder):
    """Each run created by MLflow's client, where the tracking runs; params written by it."""

    def open(self, experiment_id: str, runs: Mapping[str, NewRun]) -> dict[str, str]:
        found = {handle: NewRun(run.name, run.tags) for handle, run in runs.items()}
        opened = self.tracking.create_runs(experiment_id, found)  # adopted by the tracking
        for handle, run in runs.items():  # params come after
            self.tracking.log_params(handle, run.params)
        return opened


class _BulkRuns(RunRecorder):
    """All runs, tags and params in one transaction (:class:`BulkRunWriter`)."""

    def __init__(self, tracking: Tracking, writer: BulkRunWriter) -> None:
        super().__init__(tracking)
        self.writer = writer

    def open(self, experiment_id: str, runs: Mapping[str, NewRun]) -> dict[str, str]:
        with held():  # made and adopted together: an interrupt between leaves a run RUNNING
            ids = self.writer.create(experiment_id, list(runs.values()))
            opened = dict(zip(runs, ids, strict=True))
            for handle, run_id in opened.items():
                self.tracking.adopt_run(handle, run_id)
        return opened


class _PlannedRuns(RunRecorder):
    """Runs given their ids here and created by the tracking writer, without waiting for it.

    For a process that should train at once while its writer still imports MLflow (a tracked
    ``onecycle train``): the writer makes the experiment (``experiment``: its function and
    arguments, run there) and the runs in the order it was sent them, before their values.
    """

    def __init__(
        self, tracking: Tracking, uri: str, experiment: tuple[Callable[..., str], tuple[Any, ...]]
    ) -> None:
        super().__init__(tracking)
        self.uri = uri
        self.experiment = experiment

    def open(self, experiment_id: str, runs: Mapping[str, NewRun]) -> dict[str, str]:
        opened = {handle: plan_run_id() for handle in runs}
        planned = [(opened[handle], run) for handle, run in runs.items()]
        with held():  # posted and adopted together (see _BulkRuns.open)
            self.tracking.post(create_planned, self.uri, self.experiment, planned)
            for handle, run_id in opened.items():
                self.tracking.adopt_run(handle, run_id)
        return opened


def planned_recorder(
    tracking: Tracking, uri: str, experiment: tuple[Callable[..., str], tuple[Any, ...]]
) -> RunRecorder | None:
    """A recorder whose runs the writer creates later (see :class:`_PlannedRuns`), where it can.

    None where the bulk writer cannot write (a tracking server, another schema): MLflow gives
    the run ids there, so the caller waits for them (:func:`run_recorder`).
    """
    writer = BulkRunWriter.for_uri(uri)
    if writer is None:
        return None
    writer.engine.dispose()
    return _PlannedRuns(tracking, uri, experiment)


def run_recorder(tracking: Tracking, mlflow_uri: str, bulk: bool = True) -> RunRecorder:
    """The recorder for MLflow at ``mlflow_uri``: the bulk writer where it can, else the client.

    Neither imports MLflow here: the client's calls run where ``tracking`` runs (its writer).
    """
    writer = BulkRunWriter.for_uri(mlflow_uri) if bulk else None
    return _ApiRuns(tracking) if writer is None else _BulkRuns(tracking, writer)
