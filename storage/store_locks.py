"""Named locks shared by every process using one store: a file lock or a PostgreSQL advisory lock.

Two users: :func:`schema_lock` serialises schema creation, and the sweep runner holds
:func:`store_lock` around "count the trials, then start some" so workers never start more than
``n_trials``. Schema creation: Optuna and MLflow create their tables and stamp Alembic's version
table on first use. Two workers doing that at once on a fresh store collide ("migration expected
to match one row ... 0 found"). Holding the schema lock around the first use of each backend
makes the second process wait and then find the schema in place. SQLite stores lock a file in
the store directory; PostgreSQL stores take a server-wide advisory lock keyed on the database
prefix. A lock is re-entrant within a thread: creating a store holds the schema lock around
the first use of each backend, which takes it again.
"""

from __future__ import annotations

import fcntl
import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from storage.connect import engine_for, with_retries
from storage.spec import CONNECT_TIMEOUT_S, StoreSpec
from storage.sqlite_dir import sqlite_path

#: The locks each thread holds, so taking one again nests instead of waiting for itself.
_HELD = threading.local()


@contextmanager
def schema_lock(spec: StoreSpec, url: str) -> Iterator[None]:
    """Hold the store's schema lock while the backend behind ``url`` is first opened."""
    with store_lock(spec, url, "schema"):
        yield


@contextmanager
def store_lock(spec: StoreSpec, url: str, name: str) -> Iterator[None]:
    """A named lock shared by every process using this store (file, advisory or proxy lock).

    Used for schema creation and to make "count the trials, then start one" atomic between
    workers, so a sweep never runs more than ``n_trials``.
    """
    if spec.kind == "proxy" and url == spec.optuna_url:
        from storage.proxy_calls import proxy_lock

        with _once(f"proxy-{name}:{spec.setting}", lambda: proxy_lock(spec, name)):
            yield
        return
    database = sqlite_path(url)
    if database is not None:
        path = lock_path(spec, database, name)
        with _once(str(path), lambda: _file_lock(path)):
            yield
        return
    if url.startswith("postgresql") and spec.server_url is not None:
        server, key = spec.server_url, advisory_key(spec, name)
        with _once(key, lambda: _advisory_lock(server, key)):
            yield
        return
    yield


def lock_path(spec: StoreSpec, database: Path, name: str) -> Path:
    """The file behind lock ``name`` of a store whose database ``database`` is a SQLite file."""
    return (spec.directory or database.parent) / f".{name}.lock"


@contextmanager
def _once(key: str, take: Callable[[], AbstractContextManager[None]]) -> Iterator[None]:
    """Hold the lock ``take`` gives, unless this thread holds ``key`` already."""
    held: set[str] = _HELD.__dict__.setdefault("keys", set())
    if key in held:
        yield
        return
    with take():
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_database_url(server_url: str) -> str:
    """The database the advisory locks are taken in: the server's ``postgres`` by default."""
    url = make_url(server_url)
    url = url.set(
        database=url.database or "postgres",
        query={"connect_timeout": str(CONNECT_TIMEOUT_S), **dict(url.query)},
    )
    return url.render_as_string(hide_password=False)


def advisory_key(spec: StoreSpec, name: str) -> str:
    """The advisory lock behind lock ``name`` of the PostgreSQL store ``spec``."""
    return f"onecycle-{name}:{spec.db_prefix}"


@contextmanager
def _advisory_lock(server_url: str, name: str) -> Iterator[None]:
    rendered = lock_database_url(server_url)
    engine = engine_for(rendered)  # no pool on PostgreSQL: a waiter's tries connect and close
    try:
        with advisory_lock_on(engine, rendered, name, poll=True):
            yield
    finally:
        engine.dispose()


@contextmanager
def advisory_lock_on(engine: Engine, url: str, name: str, poll: bool = False) -> Iterator[None]:
    """Hold the advisory lock ``name`` on a connection of ``engine`` (a database at ``url``).

    ``poll``: wait by trying again after a growing pause, closing the connection in between,
    so a waiting worker holds no connection (only the holder does; docs/coordination.md).
    Without it the wait blocks on the server, holding the connection (the proxy's, which is
    kept anyway). The lock belongs to the connection's session, and a pooled connection (the
    proxy's) outlives this block: if unlocking fails, the connection is invalidated (closed, so
    the server drops the lock) rather than returned to the pool still holding it.
    """
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    connection = _locked(engine, url, key) if poll else None
    if connection is None:
        connection = with_retries("take the store's lock", url, engine.connect)
        connection.execute(text("select pg_advisory_lock(:key)"), {"key": key})
    with connection:
        try:
            yield
        finally:
            try:
                connection.execute(text("select pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
            except BaseException:
                connection.invalidate()
                raise


#: The first pause between two tries of a held lock, and the longest (seconds).
POLL_FIRST_S, POLL_MAX_S = 0.005, 0.1


def _locked(engine: Engine, url: str, key: int) -> Connection:
    """A connection holding advisory lock ``key``, tried until it is free."""
    pause = POLL_FIRST_S
    while True:
        connection = with_retries("take the store's lock", url, engine.connect)
        try:
            taken = connection.execute(text("select pg_try_advisory_lock(:key)"), {"key": key})
            if taken.scalar():
                return connection
        except BaseException:
            connection.close()
            raise
        connection.close()
        time.sleep(pause * random.uniform(0.5, 1.0))
        pause = min(pause * 1.5, POLL_MAX_S)
