"""A tracked Optuna study on a fresh store: what a sweep worker sets up, for trial tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from storage import Store, open_store, resolve_store
from storage.tracking import ProcessTracking
from sweeps.tracking import ensure_experiment, start_parent_run
from sweeps.trials import MlflowTarget, TrainSettings, TrialObjective
from sweeps.workloads import build_workload

SCHEDULE = dict(
    cycle_min_lr=0.01,
    cycle_max_lr=0.1,
    cycle_first_step_size=40,
    cycle_second_step_size=40,
    cycle_first_stair_count=4,
    decay_step_size=10,
    decay_lr_rate=0.2,
    cycle_min_mom=0.85,
    cycle_max_mom=0.95,
)


@dataclass
class TrackedSweep:
    store: Store
    target: MlflowTarget
    study: optuna.Study

    def objective(
        self, schedule: dict[str, Any] | None = None, epochs: int = 5, **settings: Any
    ) -> TrialObjective:
        chosen = dict(SCHEDULE if schedule is None else schedule)
        return TrialObjective(
            suggest=lambda trial: dict(chosen),
            get_runner=lambda: build_workload("digits", 64, 0, torch.device("cpu")),
            settings=TrainSettings(epochs=epochs, **settings),
            run_params={
                "workload": "digits",
                "batch_size": 64,
                "optimizer": "sgd",
                "seed": 0,
                "device": "cpu",
            },
            mlflow=self.target,
        )


@pytest.fixture
def tracked_sweep(tmp_path: Path) -> Iterator[Callable[..., TrackedSweep]]:
    opened: list[TrackedSweep] = []

    def make(
        pruner: optuna.pruners.BasePruner | None = None, **store_options: str
    ) -> TrackedSweep:
        spec = resolve_store(str(tmp_path / f"store{len(opened)}"), env={}, **store_options)
        store = open_store(spec)
        experiment = ensure_experiment(store.mlflow, "test-sweep", spec.artifact_location)
        parent = start_parent_run(
            store.mlflow, experiment, "test-sweep", "test-study", {"name": "test-sweep"}
        )
        tracking = ProcessTracking(spec.mlflow_uri)
        target = MlflowTarget(tracking, experiment, parent, "test-sweep")
        study = optuna.create_study(
            study_name="test-study",
            storage=store.optuna_storage,
            direction="maximize",
            pruner=pruner or optuna.pruners.NopPruner(),
        )
        sweep = TrackedSweep(store, target, study)
        opened.append(sweep)
        return sweep

    yield make
    for sweep in opened:
        sweep.target.tracking.close()
        sweep.store.close()
