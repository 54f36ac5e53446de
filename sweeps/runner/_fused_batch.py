"""What a fused batch is made of: its members, its timings, and the worker's context for it."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna

from storage.bulk_runs import BulkRunWriter
from storage.bulk_trials import BulkTrialWriter
from storage.tracking import BULK_ENV
from storage.trial_queries import rdb_storage
from sweeps.space import BatchSampling
from sweeps.trials import TrainSettings

if TYPE_CHECKING:
    from storage import Store
    from storage.tracking import Tracking
    from sweeps.config import SweepConfig
    from sweeps.space import SearchSpace
    from sweeps.task import Task


#: The sweep's sampler for a study whose trial numbers are the sweep's plus the argument.
SamplerFactory = Callable[[int], optuna.samplers.BaseSampler]


PrunerFactory = Callable[[], optuna.pruners.BasePruner]


#: ``0`` sends the batch's Optuna writes through Optuna's API, one trial at a time.
OPTUNA_BULK_ENV = "ONECYCLE_OPTUNA_BULK"


@dataclass
class Member:
    """One trial of a batch: its stored trial, its mirror (for pruning), its schedule.

    ``api`` is Optuna's own handle on the stored trial where the trial goes through Optuna's
    API (an enqueued trial, or a store the bulk writer does not know); None when the batch's
    writes go through :class:`storage.bulk_trials.BulkTrialWriter`.
    """

    trial_id: int
    number: int
    shadow: optuna.Trial
    schedule: dict[str, Any]
    handle: str = ""
    api: optuna.Trial | None = None
    intermediate: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class BatchTimes:
    """Where a batch's wall time went."""

    trials: int
    ask_s: float = 0.0
    #: The part of ``ask_s`` the sampler took (K asks in the in-memory mirror study).
    sample_s: float = 0.0
    train_s: float = 0.0
    tell_s: float = 0.0
    sync_s: float = 0.0

    @property
    def wall_s(self) -> float:
        """The whole batch."""
        return self.ask_s + self.train_s + self.tell_s + self.sync_s

    @property
    def bookkeeping_share(self) -> float:
        """Ask, tell and waiting for the tracking writer, as a share of the batch."""
        return (self.ask_s + self.tell_s + self.sync_s) / max(self.wall_s, 1e-9)


@dataclass
class FusedContext:
    """What a fused batch needs from the sweep runner (built once per worker)."""

    store: Store
    study: optuna.Study
    config: SweepConfig
    space: SearchSpace
    settings: TrainSettings
    make_workload: Callable[[], Task]
    make_sampler: SamplerFactory
    make_pruner: PrunerFactory
    tracking: Tracking | None
    experiment_id: str
    parent_run_id: str
    run_params: Mapping[str, Any]
    worker: str
    interval: int
    fused: int
    progress_start: Callable[[list[int], int], None] = lambda numbers, total: None
    progress_step: Callable[[int, int], None] = lambda number, done: None
    #: Asks a big batch in parallel chunks (``sweeps.space._parallel``).
    sampling: BatchSampling | None = None
    batches: list[BatchTimes] = field(default_factory=list)
    #: The tracking writer's marker after the previous batch's writes (waited for one batch on).
    last_mark: str | None = None
    #: Seconds the sampler took in the last :func:`next_batch`.
    last_sample_s: float = 0.0
    _writers: tuple[BulkTrialWriter | None, BulkRunWriter | None] | None = None

    def writers(self) -> tuple[BulkTrialWriter | None, BulkRunWriter | None]:
        """The bulk writers for this store's Optuna and MLflow databases (None: the APIs)."""
        if self._writers is None:
            trials, runs = None, None
            storage = rdb_storage(self.study)
            if storage is not None and os.environ.get(OPTUNA_BULK_ENV, "1") != "0":
                trials = BulkTrialWriter.for_engine(storage.engine)
            if self.tracking is not None and os.environ.get(BULK_ENV, "1") != "0":
                runs = BulkRunWriter.for_uri(self.store.spec.mlflow_uri)
            self._writers = (trials, runs)
        return self._writers
