"""Several workers, and every resume, draw new configurations: no sweep trains one twice.

Each sampler on 2 and 4 workers on PostgreSQL and 2 on SQLite (real worker processes through
``onecycle run --workers``), then interrupted and resumed, and resumed again with a raised
``n_trials``. Where the sampler allows it (random, QMC, grid), the trials are exactly the ones a
single worker asks, whatever the number of workers; TPE and CMA-ES keep that for their random
start.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import FrozenTrial, TrialState

from storage import StoreSpec, open_store, resolve_store
from storage.postgres import drop_databases
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
from tests.requirements import postgres_url

pytestmark = pytest.mark.slow  # worker processes and whole sweeps; see pyproject's markers

SAMPLERS = ["random", "tpe", "qmc", "grid", "cmaes"]
#: The trials of each sampler that depend on the seed and their number only.
FIXED_BY_NUMBER = {"random": None, "qmc": None, "grid": None, "tpe": 10, "cmaes": 1}
N_TRIALS = 9
#: Trials of the many-worker runs: past TPE's 10 random start-up trials, fewer for the others.
WORKER_TRIALS = {"tpe": 11}
CONTINUOUS = {
    "cycle_min_lr": {"low": 1e-3, "high": 1e-2, "log": True},
    "cycle_max_lr": {"low": 1e-2, "high": 0.1, "log": True},
    "cycle_first_step_size": {"low": 5, "high": 20},
}
GRID = {  # 12 points
    "cycle_max_lr": {"choices": [0.02, 0.05, 0.1]},
    "cycle_first_step_size": {"low": 5, "high": 20, "step": 5},
}


def sweep_file(tmp_path: Path, name: str, sampler: str, n_trials: int = N_TRIALS) -> Path:
    config: dict[str, Any] = {
        "name": name,
        "workload": {
            "builtin": "digits",
            "batch_size": 256,
            "epochs": 1,
            "device": "cpu",
            "options": {"hidden": [8]},
        },
        "search": {
            "n_trials": n_trials,
            "sampler": sampler,
            "pruner": "none",
            "seed": 0,
            "space": GRID if sampler == "grid" else CONTINUOUS,
        },
    }
    if sampler == "grid":
        config["scheduler"] = {"cycle_min_lr": 1e-3}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


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
                prefix = f"ocs_test_{uuid.uuid4().hex[:10]}"
                made[backend] = resolve_store(
                    postgres_url(), db_prefix=prefix, env={}, artifacts=artifacts
                )
        return made[backend]

    yield get
    for spec in made.values():
        if spec.kind != "directory":
            drop_databases(postgres_url(), spec.db_prefix)


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


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize(
    ("backend", "workers"), [("postgresql", 2), ("postgresql", 4), ("sqlite", 2)]
)
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


@pytest.mark.parametrize("fused", [None, 3], ids=["one-by-one", "fused"])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_resumed_and_extended_sweeps_ask_new_configurations(
    shared_store: Callable[[str], StoreSpec], sampler: str, fused: int | None, tmp_path: Path
) -> None:
    """Interrupted after 3 trials, resumed to 6, extended to 9: 9 distinct configurations."""
    spec = shared_store("sqlite")
    name = f"resume-{sampler}-{fused or 1}"
    path = sweep_file(tmp_path, name, sampler, n_trials=6)
    with open_store(spec) as store:
        record, _ = create_or_resume(store, load_config(path))
        with pytest.raises(KeyboardInterrupt):
            run_sweep(store, record, _StopAfter(3), fused=fused)
    assert len(stored_trials(spec, name)) == 3
    with open_store(spec) as store:
        record, created = create_or_resume(store, load_config(path))
        assert not created
        assert run_sweep(store, record, fused=fused).finished == 6
    check_distinct(stored_trials(spec, name), path, sampler, 6)
    path = sweep_file(tmp_path, name, sampler, n_trials=N_TRIALS)
    with open_store(spec) as store:
        record, _ = create_or_resume(store, load_config(path))
        assert run_sweep(store, record, fused=fused).finished == N_TRIALS
    check_distinct(stored_trials(spec, name), path, sampler, N_TRIALS)
    check_parent_run(spec, name, N_TRIALS)
