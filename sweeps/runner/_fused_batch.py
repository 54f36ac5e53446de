"""What a fused batch is made of: its members, its timings, and the worker's context for it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna

from sweeps.space import BatchSampling
from sweeps.trials import TrainSettings

if TYPE_CHECKING:
    from storage import Store
    from storage.tracking import Tracking
    from storage.trial_recording import RunRecorder, TrialRecorder
    from sweeps.config import SweepConfig
    from sweeps.space import SearchSpace
    from sweeps.task import Task


#: The sweep's sampler for a study whose trial numbers are the sweep's plus the argument.
SamplerFactory = Callable[[int], optuna.samplers.BaseSampler]


PrunerFactory = Callable[[], optuna.pruners.BasePruner]


@dataclass
class Member:
    """One trial of a batch: its stored trial, its mirror (for pruning), its schedule."""

    trial_id: int
    number: int
    shadow: optuna.Trial
    schedule: dict[str, Any]
    handle: str = ""
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
    """What a fused batch needs from the sweep runner (built once per worker).

    ``recorder`` and ``runs`` write the trials and their MLflow runs, through the bulk writers
    or the APIs as chosen for the worker (:mod:`storage.trial_recording`).
    """

    store: Store
    study: optuna.Study
    recorder: TrialRecorder
    runs: RunRecorder
    config: SweepConfig
    space: SearchSpace
    settings: TrainSettings
    get_runner: Callable[[], Task]
    make_sampler: SamplerFactory
    make_pruner: PrunerFactory
    tracking: Tracking
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
    #: Run under the store's lock before a batch starts (reopens a sweep a stopping worker ended).
    before_start: Callable[[], None] | None = None
