"""A store written by the oldest Optuna and MLflow allowed: refused, upgraded, resumed.

The store is created by this tree running in a second venv with the oldest library versions
``pyproject.toml`` allows (``SWEEPS_OLDEST_PYTHON``; `.ci/run` makes it). Opened with the
installed libraries, it is refused in one line naming ``onecycle store upgrade`` and nothing is
migrated; the upgrade copies SQLite files and migrates; the sweep then resumes with nothing lost.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from storage import StoreSpec, open_store
from storage.connect import engine_for
from storage.schema_age import installed_revisions
from storage.schema_revisions import schema_revision
from sweeps.cli import main
from tests.conftest import store_args
from tests.fixtures import CONTINUOUS_SPACE, digits_sweep, write_sweep
from tests.requirements import oldest_python

ROOT = Path(__file__).resolve().parents[2]
SPACE = {key: CONTINUOUS_SPACE[key] for key in ("cycle_min_lr", "cycle_max_lr")}


def _contents(spec: StoreSpec) -> dict[str, Any]:
    """What the store holds, read with plain SQL (the libraries refuse an old schema)."""
    optuna_db, mlflow_db = engine_for(spec.optuna_url), engine_for(spec.mlflow_uri)
    try:
        with optuna_db.connect() as optuna, mlflow_db.connect() as mlflow:
            trials = optuna.execute(
                text(
                    "select t.number, t.state, v.value from trials t "
                    "left join trial_values v on v.trial_id = t.trial_id order by t.number"
                )
            ).all()
            runs = mlflow.execute(text("select run_uuid, status from runs")).all()
            metrics = mlflow.execute(
                text("select run_uuid, count(*) from metrics group by run_uuid")
            ).all()
        return {
            "trials": [tuple(row) for row in trials],
            "runs": dict(runs),
            "metrics": dict(metrics),
            "revisions": (schema_revision(optuna_db), schema_revision(mlflow_db)),
        }
    finally:
        optuna_db.dispose()
        mlflow_db.dispose()


@pytest.mark.slow
def test_an_old_store_is_refused_upgraded_and_resumed(
    new_spec: Callable[..., StoreSpec],
    backend: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old_python = oldest_python()
    spec = new_spec()
    sweep = digits_sweep("aged", 2, space=SPACE, batch_size=256, hidden=[8])
    path = write_sweep(tmp_path, sweep)
    created = subprocess.run(
        [old_python, "-m", "sweeps", "run", str(path), *store_args(spec)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert created.returncode == 0, created.stderr[-2000:]
    before = _contents(spec)
    assert [state for _, state, _ in before["trials"]] == ["COMPLETE", "COMPLETE"]
    assert set(before["runs"].values()) == {"FINISHED"}
    assert before["revisions"][1] != installed_revisions("mlflow").head, "not an older MLflow"

    capsys.readouterr()
    assert main(["list", *store_args(spec)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert "is out of date" in error and "onecycle store upgrade --store" in error
    assert _contents(spec) == before  # refused before anything was written or migrated

    upgrade = ["store", "upgrade", *store_args(spec)]
    if backend == "postgresql":
        assert main(upgrade) == 2  # PostgreSQL is not copied: --yes after a dump
        assert "--yes: required" in capsys.readouterr().err
        upgrade.append("--yes")
    assert main(upgrade) == 0
    after = _contents(spec)
    assert after["revisions"] == (
        installed_revisions("optuna").head,
        installed_revisions("mlflow").head,
    )
    assert {k: after[k] for k in ("trials", "runs", "metrics")} == {
        k: before[k] for k in ("trials", "runs", "metrics")
    }
    if backend == "sqlite":
        copies = list((spec.directory or tmp_path).glob("backups/before-upgrade-*/mlflow.db"))
        assert len(copies) == 1
        with sqlite3.connect(copies[0]) as copy:
            kept = copy.execute("select version_num from alembic_version").fetchone()[0]
        assert kept == before["revisions"][1]  # the copy is the store as it was

    sweep["search"]["n_trials"] = 3
    write_sweep(tmp_path, sweep)
    assert main(["run", str(path), *store_args(spec)]) == 0
    resumed = _contents(spec)
    assert resumed["trials"][:2] == before["trials"]
    assert [state for _, state, _ in resumed["trials"]] == ["COMPLETE"] * 3
    with open_store(spec) as store:
        record = store.sweeps.get("aged")
        assert record.status == "finished"
        parent = store.mlflow.get_run(record.mlflow_parent_run_id or "")
        assert parent.info.status == "FINISHED"
    trial_runs = set(before["metrics"]) - {parent.info.run_id}  # the parent logs its summary again
    assert len(trial_runs) == 2
    assert {k: resumed["metrics"][k] for k in trial_runs} == {
        k: before["metrics"][k] for k in trial_runs
    }
    assert set(resumed["runs"].values()) == {"FINISHED"} and len(resumed["runs"]) == 4
