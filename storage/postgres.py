"""A PostgreSQL store: two databases on one server, created if missing.

Optuna and MLflow each get a database (``<prefix>_optuna`` and ``<prefix>_mlflow``). Creating
them needs the CREATEDB right once; later opens only connect. A database this store creates
carries a comment (:data:`CREATING`) until its schema is complete, so a creation cut short (a
full tablespace, a killed process) is recognised by the next open, which drops and creates it
again (see :mod:`storage.store_creation`); a database created by someone else never has it, and
is never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from storage.connect import engine_for, with_retries
from storage.spec import StoreSpec

T = TypeVar("T")

#: The comment on a database whose creation has not finished.
CREATING = "onecycle: creation not finished"


def wanted_databases(spec: StoreSpec) -> list[str]:
    """The databases of ``spec`` on its server that opening the store may create."""
    if spec.server_url is None:
        return []
    host = make_url(spec.server_url).host
    names = []
    for url in (spec.optuna_url, spec.mlflow_uri):
        parsed = make_url(url)
        if parsed.get_backend_name() == "postgresql" and parsed.host == host and parsed.database:
            names.append(parsed.database)
    return names


def database_comments(spec: StoreSpec, attempts: int) -> dict[str, str | None]:
    """Each of the store's databases that exists, with its comment (None: no comment)."""
    names = wanted_databases(spec)
    if not names:
        return {}

    def read(connection: Connection) -> dict[str, str | None]:
        rows = connection.execute(
            text(
                "select datname, shobj_description(oid, 'pg_database') from pg_database "
                "where datname = any(:names)"
            ),
            {"names": names},
        ).all()
        return {str(name): comment for name, comment in rows}

    return _on_server(spec, "read the store's databases", read, attempts)


def create_databases(spec: StoreSpec, names: list[str], attempts: int) -> list[str]:
    """Create ``names``, each marked :data:`CREATING`; the names this call created."""
    created: list[str] = []

    def create(connection: Connection) -> None:
        for name in names:
            if name in created:
                continue
            try:
                connection.execute(text(f'create database "{name}"'))
            except DBAPIError as error:  # a creator that does not take the lock won the race
                if "already exists" not in str(error) and "duplicate" not in str(error):
                    raise
                continue
            created.append(name)
            connection.execute(text(f"comment on database \"{name}\" is '{CREATING}'"))

    _on_server(spec, "create the store's databases", create, attempts)
    return created


def mark_finished(spec: StoreSpec, names: list[str], attempts: int) -> None:
    """Remove the :data:`CREATING` comment: the databases hold a complete store now."""

    def finish(connection: Connection) -> None:
        for name in names:
            connection.execute(text(f'comment on database "{name}" is null'))

    if names:
        _on_server(spec, "finish the store's databases", finish, attempts)


def drop_created(spec: StoreSpec, names: list[str]) -> None:
    """Drop databases this store created (ending connections still open to them)."""

    def drop(connection: Connection) -> None:
        for name in names:
            connection.execute(text(f'drop database if exists "{name}" with (force)'))

    if names:
        _on_server(spec, "remove the unfinished store's databases", drop, 1)


def _on_server(spec: StoreSpec, what: str, action: Callable[[Connection], T], attempts: int) -> T:
    """Run ``action`` on the server's maintenance database, outside any transaction."""
    maintenance = make_url(spec.server_url or "")
    maintenance = maintenance.set(
        database=maintenance.database or "postgres",
        query={**dict(maintenance.query), "connect_timeout": "3"},
    )
    url = maintenance.render_as_string(hide_password=False)
    engine = engine_for(url).execution_options(isolation_level="AUTOCOMMIT")

    def run() -> T:
        with engine.connect() as connection:
            return action(connection)

    try:
        return with_retries(what, url, run, attempts)
    finally:
        engine.dispose()


def drop_databases(server: str, prefix: str) -> None:
    """Remove a store's two databases (``<prefix>_optuna``, ``<prefix>_mlflow``) from ``server``.

    For throw-away stores (tests, benchmarks); connections still open to them are ended.
    """
    from sqlalchemy import create_engine

    url = make_url(server).set(drivername="postgresql+psycopg", database="postgres")
    # Named, so that a count of a store's connections by application name never includes it.
    engine = create_engine(
        url, isolation_level="AUTOCOMMIT", connect_args={"application_name": "onecycle-drop"}
    )
    try:
        with engine.connect() as connection:
            for suffix in ("optuna", "mlflow"):
                name = f"{prefix}_{suffix}"
                connection.execute(text(f'drop database if exists "{name}" with (force)'))
    finally:
        engine.dispose()
