"""What a store holds after a failure: whether it exists at all, and each record's state.

The failure tests check the store, not only the exit code: a command refused before the store
is touched must leave no store behind; one that ran must leave every record in a final state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
from sqlalchemy import create_engine, make_url, text

from storage import StoreSpec, open_store
from tests.conftest import store_args

__all__ = ["StoreState", "state_of", "store_args", "store_exists", "sweep_file"]


def store_exists(spec: StoreSpec) -> bool:
    """Whether anything of ``spec``'s store was created (a directory, or a database)."""
    if spec.kind == "directory":
        return Path(spec.setting).exists()
    url = make_url(spec.optuna_url).set(drivername="postgresql+psycopg", database="postgres")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text("select count(*) from pg_database where datname like :prefix"),
                {"prefix": f"{spec.db_prefix}%"},
            ).scalar_one()
    finally:
        engine.dispose()
    return bool(found)


@dataclass
class StoreState:
    """A sweep's status, its trials' Optuna states and its MLflow runs' statuses."""

    status: str
    trials: list[str]
    parent: str
    runs: list[str]


def state_of(spec: StoreSpec, name: str) -> StoreState:
    """Read the state of sweep ``name`` in ``spec``'s store."""
    with open_store(spec) as store:
        record = store.sweeps.get(name)
        study = optuna.load_study(study_name=record.study_name, storage=store.optuna_storage)
        trials = [trial.state.name for trial in study.get_trials(deepcopy=False)]
        client = store.mlflow
        parent = client.get_run(record.mlflow_parent_run_id or "").info.status
        children = client.search_runs(
            [record.mlflow_experiment_id or ""],
            filter_string=f"tags.mlflow.parentRunId = '{record.mlflow_parent_run_id}'",
        )
        return StoreState(
            record.status, trials, parent, sorted(str(run.info.status) for run in children)
        )


def sweep_file(directory: Path, body: str, name: str = "sweep.yaml") -> Path:
    """Write a sweep file whose search space needs no range test."""
    path = directory / name
    path.write_text(body)
    return path
