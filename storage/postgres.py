"""A PostgreSQL store: two databases on one server, created if missing.

Optuna and MLflow each get a database (``<prefix>_optuna`` and ``<prefix>_mlflow``). Creating
them needs the CREATEDB right once; later opens only connect. Two workers opening a new store
at the same moment both try to create; the loser's "already exists" is not an error.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, ProgrammingError

from storage.connect import engine_for, with_retries
from storage.spec import StoreSpec


def ensure_databases(spec: StoreSpec, attempts: int) -> list[str]:
    """Create the store's databases that do not exist yet; return the names created."""
    if spec.server_url is None:
        return []
    wanted = [
        make_url(url).database
        for url in (spec.optuna_url, spec.mlflow_uri)
        if make_url(url).get_backend_name() == "postgresql"
        and make_url(url).host == make_url(spec.server_url).host
    ]
    maintenance = make_url(spec.server_url)
    maintenance = maintenance.set(
        database=maintenance.database or "postgres",
        query={**dict(maintenance.query), "connect_timeout": "3"},
    )
    url = maintenance.render_as_string(hide_password=False)
    engine = engine_for(url).execution_options(isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def create_missing() -> None:
        with engine.connect() as connection:
            for name in wanted:
                if name is None:
                    continue
                exists = connection.execute(
                    text("select 1 from pg_database where datname = :name"), {"name": name}
                ).scalar()
                if exists:
                    continue
                try:
                    connection.execute(text(f'create database "{name}"'))
                    created.append(name)
                except ProgrammingError as error:
                    if "already exists" not in str(error):
                        raise
                except DBAPIError as error:  # a concurrent creator won the race
                    if "already exists" not in str(error) and "duplicate" not in str(error):
                        raise

    try:
        with_retries("create the store's databases", url, create_missing, attempts)
    finally:
        engine.dispose()
    return created


def drop_databases(server: str, prefix: str) -> None:
    """Remove a store's two databases (``<prefix>_optuna``, ``<prefix>_mlflow``) from ``server``.

    For throw-away stores (tests, benchmarks); connections still open to them are ended.
    """
    from sqlalchemy import create_engine

    url = make_url(server).set(drivername="postgresql+psycopg", database="postgres")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for suffix in ("optuna", "mlflow"):
                name = f"{prefix}_{suffix}"
                connection.execute(text(f'drop database if exists "{name}" with (force)'))
    finally:
        engine.dispose()
