"""A store whose schema is not the installed libraries' is refused in one line, unchanged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from storage import StoreSpec, open_store, resolve_store
from storage.connect import engine_for
from storage.errors import StoreConfigError
from storage.schema_age import installed_revisions
from storage.schema_revisions import schema_revision
from storage.store_upgrade import upgrade_store
from sweeps.cli import main
from tests.conftest import store_args

pytestmark = pytest.mark.versions


def test_the_installed_heads_are_read_from_the_migration_scripts() -> None:
    import optuna
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    mlflow = installed_revisions("mlflow")
    config = _get_alembic_config("sqlite://")
    assert mlflow.head == ScriptDirectory.from_config(config).get_current_head()
    assert mlflow.version == __import__("mlflow").__version__
    store = optuna.storages.RDBStorage("sqlite://")
    assert installed_revisions("optuna").head == store.get_current_version()


def test_a_store_from_a_newer_library_is_refused_and_left_alone(
    new_spec: Callable[..., StoreSpec], backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = new_spec()
    open_store(spec).close()
    if backend == "postgresql":  # with a password in the URL (trust auth ignores it)
        url = make_url(spec.setting).set(password="s3cret-pw")
        spec = resolve_store(
            url.render_as_string(hide_password=False), db_prefix=spec.db_prefix, env={}
        )
    engine = engine_for(spec.mlflow_uri)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    with pytest.raises(StoreConfigError) as refused:
        open_store(spec)
    message = str(refused.value)
    assert "its MLflow schema is at ffffffffffff, from a newer MLflow" in message
    assert message.endswith("install a newer mlflow to use it")
    with pytest.raises(StoreConfigError, match="from a newer MLflow"):
        upgrade_store(spec, confirmed=True)
    capsys.readouterr()
    assert main(["status", "nothing", *store_args(spec)]) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and "newer MLflow" in error
    assert "s3cret-pw" not in message + error
    if backend == "postgresql":
        assert "***" in message
    assert schema_revision(engine) == "ffffffffffff"  # nothing migrated, nothing written
    engine.dispose()


def test_a_current_store_needs_no_upgrade(new_spec: Callable[..., StoreSpec]) -> None:
    spec = new_spec()
    open_store(spec).close()
    steps, copy = upgrade_store(spec)
    assert copy is None
    assert [(s.library, s.before == s.after) for s in steps] == [
        ("optuna", True),
        ("mlflow", True),
    ]


def test_upgrading_no_store_is_refused(tmp_path: Path) -> None:
    spec = resolve_store(str(tmp_path) + "/none", env={})
    with pytest.raises(StoreConfigError, match="no store at"):
        upgrade_store(spec)
    assert not (spec.directory and spec.directory.exists())
