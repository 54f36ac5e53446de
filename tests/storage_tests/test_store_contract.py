"""One contract, two backends: everything a store promises, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import subprocess
import sys
from collections.abc import Callable

import optuna
import pytest
from sqlalchemy import create_engine, text

from storage import (
    StoreSpec,
    SweepExists,
    SweepNotFound,
    SweepRecord,
    open_store,
    store_info,
)

pytestmark = pytest.mark.versions

NewSpec = Callable[..., StoreSpec]


def record(name: str = "digits") -> SweepRecord:
    return SweepRecord(
        name=name,
        config={"name": name, "search": {"n_trials": 3}},
        status="created",
        study_name=f"{name}-study",
    )


def test_opening_creates_both_backends(new_spec: NewSpec, backend: str) -> None:
    spec = new_spec()
    store = open_store(spec)
    if backend == "sqlite":
        assert spec.directory is not None
        for name in ("optuna.db", "mlflow.db"):
            mode = sqlite3.connect(spec.directory / name).execute("pragma journal_mode").fetchone()
            assert mode[0] == "wal"
        assert (spec.directory / "artifacts").is_dir()
    else:
        engine = create_engine(spec.mlflow_uri)
        with engine.connect() as connection:
            assert (
                connection.execute(text("select current_database()")).scalar().endswith("_mlflow")
            )
        engine.dispose()
    assert store.optuna_storage.get_current_version()
    assert store.mlflow.search_experiments()  # MLflow's schema and Default experiment exist
    store.close()


def test_sweep_record_round_trip_and_reopen(new_spec: NewSpec) -> None:
    spec = new_spec()
    with open_store(spec) as store:
        created = store.sweeps.create(record())
        assert created.created_at is not None
        store.sweeps.update(
            "digits", status="running", mlflow_experiment_id="7", mlflow_parent_run_id="abc"
        )
    with open_store(spec) as reopened:
        again = reopened.sweeps.get("digits")
        assert again.config == {"name": "digits", "search": {"n_trials": 3}}
        assert (again.status, again.mlflow_experiment_id, again.mlflow_parent_run_id) == (
            "running",
            "7",
            "abc",
        )
        assert [r.name for r in reopened.sweeps.list()] == ["digits"]


def test_another_process_reads_the_sweep_back_by_name(new_spec: NewSpec) -> None:
    spec = new_spec()
    with open_store(spec) as store:
        store.sweeps.create(record("shared"))
    code = (
        "import json, sys, storage\n"
        "spec = storage.resolve_store(sys.argv[1], db_prefix=sys.argv[2], env={})\n"
        "with storage.open_store(spec) as s:\n"
        "    r = s.sweeps.get('shared')\n"
        "    print(json.dumps([r.study_name, r.config, r.status]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, spec.setting, spec.db_prefix],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == [
        "shared-study",
        {"name": "shared", "search": {"n_trials": 3}},
        "created",
    ]


def test_duplicate_and_unknown_sweeps_are_refused(new_spec: NewSpec) -> None:
    with open_store(new_spec()) as store:
        store.sweeps.create(record("one"))
        with pytest.raises(SweepExists, match="a sweep named 'one' already exists"):
            store.sweeps.create(record("one"))
        with pytest.raises(SweepNotFound, match=r"no sweep named 'two'.*known sweeps: \['one'\]"):
            store.sweeps.get("two")
        with pytest.raises(ValueError, match="`status` must be one of"):
            store.sweeps.update("one", status="exploded")


def test_schema_creation_is_idempotent(new_spec: NewSpec) -> None:
    spec = new_spec()
    for _ in range(3):
        with open_store(spec) as store:
            store.sweeps.create_schema()
            assert store.optuna_storage.get_current_version()
    with open_store(spec) as store:
        assert store.sweeps.list() == []


def _open_and_use(setting: str, prefix: str, index: int, results: multiprocessing.Queue) -> None:
    import storage

    try:
        spec = storage.resolve_store(setting, db_prefix=prefix, env={})
        with storage.open_store(spec) as store:
            optuna.create_study(study_name=f"s{index}", storage=store.optuna_storage)
            store.mlflow.create_experiment(f"e{index}")
            store.sweeps.create(record(f"sweep{index}"))
        results.put("ok")
    except Exception as error:  # reported to the parent, which fails the test
        results.put(f"{type(error).__name__}: {error}")


@pytest.mark.slow  # two processes importing MLflow and Optuna
def test_two_processes_opening_a_new_store_at_once_both_succeed(new_spec: NewSpec) -> None:
    spec = new_spec()
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()
    workers = [
        context.Process(target=_open_and_use, args=(spec.setting, spec.db_prefix, i, results))
        for i in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    outcomes = [results.get(timeout=5) for _ in workers]
    assert outcomes == ["ok", "ok"], outcomes
    with open_store(spec) as store:
        assert sorted(r.name for r in store.sweeps.list()) == ["sweep0", "sweep1"]
        names = {s.study_name for s in optuna.get_all_study_summaries(store.optuna_storage)}
        assert names == {"s0", "s1"}


def test_secrets_never_reach_the_saved_config(new_spec: NewSpec) -> None:
    with open_store(new_spec()) as store:
        leaky = SweepRecord(
            name="leaky",
            status="created",
            study_name="leaky",
            config={"note": "see postgresql://ann:hunter2@db:5432/", "list": ["http://u:pw@h/"]},
        )
        store.sweeps.create(leaky)
        saved = store.sweeps.get("leaky").config
    assert "hunter2" not in json.dumps(saved) and "pw@" not in json.dumps(saved)
    assert saved["note"] == "see postgresql://ann:***@db:5432/"


def test_store_info_lists_backends_sweeps_and_sizes(new_spec: NewSpec, backend: str) -> None:
    with open_store(new_spec()) as store:
        store.sweeps.create(record("infosweep"))
        optuna.create_study(study_name="infosweep-study", storage=store.optuna_storage)
        store.mlflow.create_experiment("infosweep")
        info = store_info(store)
        # Counted with one query, as MLflow's client counts them (its default one included).
        assert info["mlflow"]["experiments"] == len(store.mlflow.search_experiments()) >= 1
    assert info["optuna"]["backend"] == info["mlflow"]["backend"] == backend
    assert info["optuna"]["size_bytes"] > 0 and info["mlflow"]["size_bytes"] > 0
    assert info["sweeps"][0]["name"] == "infosweep" and info["sweeps"][0]["trials"] == 0
