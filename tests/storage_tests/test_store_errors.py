"""Bad settings and unreachable stores: one clear line, no password, fast."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from storage import StoreConfigError, StoreUnavailable, open_store, resolve_store
from storage.spec import ENV_STORE
from tests.fixtures import free_port, unique_prefix
from tests.requirements import postgres_url


@pytest.mark.parametrize(
    ("setting", "overrides", "message"),
    [
        (
            "mysql://root:pw@localhost/",
            {},
            r"`store` must be a directory, a postgresql:// server URL or a storage proxy's "
            r"onecycle://host:port, got scheme 'mysql' in 'mysql://root:\*\*\*@localhost/'",
        ),
        ("sqlite:///x.db", {}, r"a SQLite file belongs to one part"),
        ("postgresql:///nohost", {}, r"PostgreSQL URL needs a host"),
        (
            "/tmp/x",
            {"db_prefix": "Bad-Prefix"},
            r"`db_prefix` must be a lower-case SQL identifier",
        ),
        (
            "/tmp/x",
            {"mlflow_uri": "ftp://host/"},
            r"`mlflow_uri` must be an http\(s\):// tracking server",
        ),
        (
            "/tmp/x",
            {"optuna_storage": "not a url"},
            r"`optuna_storage` must be a SQLAlchemy database URL",
        ),
        ("onecycle://ann:pw@head:13000", {}, r"no user, password, path or query.*ann:\*\*\*@"),
        ("onecycle://head:13000/db", {}, r"a storage proxy address is onecycle://host:port"),
        ("onecycle://head:99999", {}, r"port 1-65534"),
        (
            "onecycle://head:13000",
            {"optuna_storage": "sqlite:///x.db"},
            r"`optuna_storage` cannot be set with a storage proxy",
        ),
    ],
)
def test_bad_settings_are_refused_before_anything_is_touched(
    setting: str, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(StoreConfigError, match=message):
        resolve_store(setting, env={}, **overrides)


def test_a_proxy_address_resolves_without_touching_anything() -> None:
    spec = resolve_store("onecycle://head:13100", env={})
    assert (spec.kind, spec.optuna_url, spec.mlflow_uri) == ("proxy", "onecycle://head:13100", "")
    assert resolve_store("onecycle://head", env={}).optuna_url == "onecycle://head:13000"


def test_optuna_and_mlflow_in_one_database_is_refused(tmp_path: Path) -> None:
    shared = f"sqlite:///{tmp_path}/one.db"
    with pytest.raises(StoreConfigError, match=r"must not share one database.*`alembic_version`"):
        resolve_store(str(tmp_path), optuna_storage=shared, mlflow_uri=shared, env={})
    with pytest.raises(StoreConfigError, match="must not share one database"):
        resolve_store(
            "postgresql://u:pw@127.0.0.1:5432/",
            optuna_storage="postgresql://u:pw@localhost:5432/db",
            mlflow_uri="postgresql+psycopg://u:pw@127.0.0.1:5432/db",
            env={},
        )


def test_environment_variable_names_the_store(tmp_path: Path) -> None:
    spec = resolve_store(env={ENV_STORE: str(tmp_path / "from-env")})
    assert spec.directory == tmp_path / "from-env"
    assert (
        resolve_store(str(tmp_path / "flag"), env={ENV_STORE: "/elsewhere"}).directory
        == tmp_path / "flag"
    )


def test_directory_that_cannot_be_created_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(StoreConfigError, match="exists and is not a directory"):
        open_store(resolve_store(str(blocker), env={}))
    with pytest.raises(StoreConfigError, match=r"directory .*a-file/store is not writable"):
        open_store(resolve_store(str(blocker / "store"), env={}))


def test_unreachable_server_fails_fast_without_the_password() -> None:
    port = free_port()  # nothing listens there
    spec = resolve_store(f"postgresql://ann:hunter2@127.0.0.1:{port}/", env={})
    start = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        open_store(spec)
    assert time.monotonic() - start < 10
    message = str(caught.value)
    assert "hunter2" not in message
    assert f"postgresql+psycopg://ann:***@127.0.0.1:{port}/" in message
    assert "3 attempts" in message and "server is running" in message
    assert "\n" not in message


def test_refused_login_is_reported_at_once_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = make_url(postgres_url())
    bad = server.set(username="no_such_role_ocs", password="s3cr3t-pw").render_as_string(
        hide_password=False
    )
    caplog.set_level(logging.DEBUG)
    start = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        open_store(resolve_store(bad, env={}))
    assert time.monotonic() - start < 5  # not retried: a login error is not transient
    message = str(caught.value)
    assert "s3cr3t-pw" not in message and "s3cr3t-pw" not in caplog.text
    assert "(1 attempt)" in message
    assert "check the user and password" in message


def test_password_in_a_working_url_is_never_logged_or_shown(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from tests.later_drops import drop_later

    server = make_url(postgres_url())
    with_password = server.set(password="pw-should-stay-hidden").render_as_string(
        hide_password=False
    )
    caplog.set_level(logging.DEBUG)
    prefix = unique_prefix("secret")
    spec = resolve_store(with_password, db_prefix=prefix, artifacts=str(tmp_path), env={})
    try:
        with open_store(spec) as store:
            from storage import store_info

            shown = repr(spec) + spec.describe() + str(store_info(store))
    finally:
        drop_later(with_password, prefix)
    assert "pw-should-stay-hidden" not in shown
    assert "pw-should-stay-hidden" not in caplog.text


def test_unreachable_tracking_server_is_reported(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    spec = resolve_store(str(tmp_path), mlflow_uri=f"http://127.0.0.1:{port}", env={})
    with pytest.raises(
        StoreUnavailable,
        match=f"cannot reach the MLflow tracking server at http://127.0.0.1:{port}",
    ):
        open_store(spec)
