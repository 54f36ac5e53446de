"""A new SQLite store starts from a kept copy of MLflow's schema: the same schema, no migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage import open_store, resolve_store
from storage.schema_template import template_path

pytestmark = pytest.mark.versions


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("ONECYCLE_CACHE_DIR", str(folder))
    monkeypatch.delenv("ONECYCLE_SCHEMA_CACHE", raising=False)
    return folder


def new_store(where: Path) -> Path:
    """Create a store at ``where``, use its MLflow side once; its mlflow.db."""
    with open_store(resolve_store(str(where), env={})) as store:
        client = store.mlflow
        assert client.get_experiment("0").name == "Default"  # MLflow made it for this store
        run = client.create_run(client.create_experiment("e"))
        client.log_metric(run.info.run_id, "loss", 0.5, step=1)
        client.set_terminated(run.info.run_id)
    return where / "mlflow.db"


def schema(database: Path) -> tuple[list[tuple[str, str, list[str]]], list[tuple[str, ...]]]:
    """Every table's and index's definition, and the revision stamp.

    A definition is compared as its sorted lines: MLflow's migrations write a table's
    constraints in an order that changes from one run to the next.
    """
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
            "ORDER BY type, name"
        ).fetchall()
        stamp = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    objects = [
        (kind, name, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines()))
        for kind, name, sql in rows
    ]
    return objects, stamp


def test_the_second_new_store_is_copied_and_equals_a_migrated_one(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = template_path()
    assert found is not None and not found[0].exists()
    first = new_store(tmp_path / "first")  # migrated, and kept
    assert found[0].is_file()
    kept = found[0].stat().st_mtime_ns
    second = new_store(tmp_path / "second")  # copied
    assert found[0].stat().st_mtime_ns == kept  # read, not made again
    monkeypatch.setenv("ONECYCLE_SCHEMA_CACHE", "0")
    migrated = new_store(tmp_path / "migrated")
    assert schema(second) == schema(first) == schema(migrated)
    assert schema(second)[1] == [(found[1],)]
    with sqlite3.connect(second) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        names = connection.execute("SELECT name FROM experiments ORDER BY name").fetchall()
    assert names == [("Default",), ("e",)]  # nothing of the first store came along


def test_the_cache_can_be_turned_off(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONECYCLE_SCHEMA_CACHE", "0")
    new_store(tmp_path / "store")
    assert template_path() is None and not cache.exists()


@pytest.mark.parametrize("damage", ["garbage", "other revision", "holds an experiment"])
def test_a_damaged_copy_is_removed_and_the_store_migrated(
    cache: Path, tmp_path: Path, damage: str
) -> None:
    new_store(tmp_path / "first")
    found = template_path()
    assert found is not None
    template = found[0]
    if damage == "garbage":
        template.write_bytes(b"not a database" * 100)
    else:
        with sqlite3.connect(template) as connection:
            if damage == "other revision":
                connection.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
            else:
                connection.execute(
                    "INSERT INTO experiments (experiment_id, name, lifecycle_stage) "
                    "VALUES (7, 'stray', 'active')"
                )
    database = new_store(tmp_path / "second")
    assert schema(database)[1] == [(found[1],)]
    assert schema(template)[1] == [(found[1],)]  # replaced by the schema just migrated
    with sqlite3.connect(template) as connection:
        assert connection.execute("SELECT count(*) FROM experiments").fetchone() == (0,)


def test_an_unwritable_cache_only_means_no_copy(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("ONECYCLE_CACHE_DIR", str(blocked / "cache"))  # under a file: no mkdir
    new_store(tmp_path / "one")
    new_store(tmp_path / "two")
    assert not (blocked / "cache").exists()
