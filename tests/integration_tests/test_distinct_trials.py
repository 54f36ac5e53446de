"""Several workers, and every resume, draw new configurations: no sweep trains one twice.

What makes a trial's configuration depend on its number alone is the sampler's; what makes the
numbers unique across processes is the store's lock. So each sampler runs once through real
worker processes (``onecycle run --workers 2`` on SQLite), and the lock is shown on PostgreSQL
with 4 workers; each sampler is interrupted, resumed and extended once, one-by-one and fused
turns alternating, so each mode continues a study the other one started. Where the sampler
allows it (random, QMC, grid), the trials are exactly the ones a single worker asks, whatever
the number of workers; TPE and CMA-ES keep that for their random start.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from storage import StoreSpec, open_store, resolve_store
from sweeps.cli import main
from sweeps.runner import (
    Progress,
    SweepOutcome,
    create_or_resume,
    load_config,
    run_sweep,
)
from sweeps.space import SearchSpace, make_sampler
from tests.conftest import store_args
from tests.fixtures import digits_sweep, unique_prefix, write_sweep
from tests.integration_tests.test_many_workers import check_sweep
from tests.later_drops import drop_later
from tests.requirements import postgres_url

pytestmark = pytest.mark.slow  # worker processes and whole sweeps; see pyproject's markers

SAMPLERS = ["random", "tpe", "qmc", "grid", "cmaes"]
#: The trials of each sampler that depend on the seed and their number only.
FIXED_BY_NUMBER = {"random": None, "qmc": None, "grid": None, "tpe": 10, "cmaes": 1}
#: Trials of the many-worker runs: past TPE's 10 random start-up trials, fewer for the others.
WORKER_TRIALS = {"tpe": 11}
GRID = {  # 12 points
    "cycle_max_lr": {"choices": [0.02, 0.05, 0.1]},
    "cycle_first_step_size": {"low": 5, "high": 20, "step": 5},
}


def sweep_file(tmp_path: Path, name: str, sampler: str, n_trials: int) -> Path:
    extra: dict[str, Any] = {"scheduler": {"cycle_min_lr": 1e-3}} if sampler == "grid" else {}
    config = digits_sweep(
        name,
        n_trials,
        sampler=sampler,
        space=GRID if sampler == "grid" else None,
        batch_size=256,
        hidden=[8],
        **extra,
    )
    return write_sweep(tmp_path, config)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], StoreSpec]]:
    """One store per backend for the module: each test's sweep has its own name, and the two
    schemas (MLflow's migrations take seconds) are made once."""
    made: dict[str, StoreSpec] = {}
    folder = tmp_path_factory.mktemp("distinct")

    def get(backend: str) -> StoreSpec:
        if backend not in made:
            artifacts = str(folder / f"artifacts-{backend}")
            if backend == "sqlite":
                made[backend] = resolve_store(str(folder / "store"), env={}, artifacts=artifacts)
            else:
                made[backend] = resolve_store(
                    postgres_url(), db_prefix=unique_prefix(), env={}, artifacts=artifacts
                )
        return made[backend]

    yield get
    for spec in made.values():
        if spec.kind != "directory":
            drop_later(postgres_url(), spec.db_prefix)


def key(trial: FrozenTrial) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(trial.params.items()))


def serial_asks(path: Path, count: int) -> list[tuple[tuple[str, Any], ...]]:
    """What one worker asks for trials 0..count-1 when no result has arrived yet."""
    config = load_config(path)
    space = SearchSpace(config)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(config, space))
    asked = []
    for _ in range(count):
        trial = study.ask()
        space.suggest(trial)
        asked.append(tuple(sorted(trial.params.items())))
    return asked


def stored_trials(spec: StoreSpec, name: str) -> list[FrozenTrial]:
    with open_store(spec) as store:
        study = optuna.load_study(study_name=name, storage=store.optuna_storage)
        return sorted(study.get_trials(), key=lambda t: t.number)


def check_distinct(trials: list[FrozenTrial], path: Path, sampler: str, n_trials: int) -> None:
    assert [t.state for t in trials] == [TrialState.COMPLETE] * n_trials
    assert [t.number for t in trials] == list(range(n_trials))
    keys = [key(t) for t in trials]
    assert len(set(keys)) == n_trials, f"{sampler}: repeated configurations {keys}"
    fixed = FIXED_BY_NUMBER[sampler]
    expected = serial_asks(path, n_trials if fixed is None else min(fixed, n_trials))
    if fixed is None:
        assert sorted(keys) == sorted(expected)  # the same set, whatever the workers
    else:
        assert keys[: len(expected)] == expected


def check_parent_run(spec: StoreSpec, name: str, n_trials: int) -> None:
    """The summary is written once, and says what the study holds."""
    with open_store(spec) as store:
        record = store.sweeps.get(name)
        parent = store.mlflow.get_run(record.mlflow_parent_run_id)
        assert parent.info.status == "FINISHED"
        counts = json.loads(parent.data.tags["onecycle.trials"])
        assert counts["complete"] == n_trials and counts["fail"] == counts["running"] == 0
        assert json.loads(parent.data.tags["onecycle.summary"]) == {"finished": n_trials}
        history = store.mlflow.get_metric_history(parent.info.run_id, "best_value")
        study = optuna.load_study(study_name=name, storage=store.optuna_storage)
        assert [m.value for m in history][-1] == pytest.approx(study.best_value)
        artifacts = [a.path for a in store.mlflow.list_artifacts(parent.info.run_id)]
        assert artifacts.count("best_deepspeed_config.json") == 1


#: Each sampler through two worker processes; the store lock under four, on the other backend.
WORKER_CASES = [(sampler, "sqlite", 2) for sampler in SAMPLERS] + [("random", "postgresql", 4)]


@pytest.mark.parametrize(("sampler", "backend", "workers"), WORKER_CASES)
def test_workers_never_train_one_configuration_twice(
    shared_store: Callable[[str], StoreSpec],
    backend: str,
    workers: int,
    sampler: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = shared_store(backend)
    name = f"distinct-{sampler}-{backend}-{workers}"
    n_trials = WORKER_TRIALS.get(sampler, 6)
    path = sweep_file(tmp_path, name, sampler, n_trials)
    assert main(["run", str(path), "--workers", str(workers), *store_args(spec)]) == 0
    captured = capsys.readouterr()
    assert "failed" not in captured.err and "Traceback" not in captured.err
    check_sweep(spec, name, n_trials)  # exact count, one ended run per trial, record finished
    check_distinct(stored_trials(spec, name), path, sampler, n_trials)
    check_parent_run(spec, name, n_trials)
    # the parent run's history: one best value per summary written
    with open_store(spec) as store:
        parent = store.mlflow.get_run(store.sweeps.get(name).mlflow_parent_run_id)
        assert len(store.mlflow.get_metric_history(parent.info.run_id, "best_value")) == 1


class _StopAfter(Progress):
    """Ctrl+C after ``count`` finished trials: an interruption between two trials."""

    def __init__(self, count: int) -> None:
        self.count = count

    def sweep(self, outcome: SweepOutcome, n_trials: int) -> None:
        if outcome.finished >= self.count and not outcome.done:
            raise KeyboardInterrupt("test stop")


#: Which mode interrupts, which resumes: each sampler meets both, each mode does all three.
FUSED_FIRST = {"random": False, "tpe": True, "qmc": False, "grid": True, "cmaes": False}
FUSED = 2


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_resumed_and_extended_sweeps_ask_new_configurations(
    shared_store: Callable[[str], StoreSpec], sampler: str, tmp_path: Path
) -> None:
    """Interrupted after 2 trials, resumed to 4 in the other mode (one-by-one or fused), then
    extended to 6 in the first mode: 6 distinct configurations."""
    spec = shared_store("sqlite")
    name = f"resume-{sampler}"
    first, other = (FUSED, None) if FUSED_FIRST[sampler] else (None, FUSED)
    path = sweep_file(tmp_path, name, sampler, n_trials=4)
    with open_store(spec) as store:
        record, _ = create_or_resume(store, load_config(path))
        with pytest.raises(KeyboardInterrupt):
            run_sweep(store, record, _StopAfter(2), fused=first)
    assert len(stored_trials(spec, name)) == 2
    with open_store(spec) as store:
        record, created = create_or_resume(store, load_config(path))
        assert not created
        assert run_sweep(store, record, fused=other).finished == 4
    check_distinct(stored_trials(spec, name), path, sampler, 4)
    path = sweep_file(tmp_path, name, sampler, n_trials=6)
    with open_store(spec) as store:
        record, created = create_or_resume(store, load_config(path))
        assert not created
        assert run_sweep(store, record, fused=first).finished == 6
    check_distinct(stored_trials(spec, name), path, sampler, 6)
    check_parent_run(spec, name, 6)
