"""Named locks shared by every process using one store: a file lock or a PostgreSQL advisory lock.

Two users: :func:`schema_lock` serialises schema creation, and the sweep runner holds
:func:`store_lock` around "count the trials, then start some" so workers never start more than
``n_trials``. Schema creation: Optuna and MLflow create their tables and stamp Alembic's version
table on first use. Two workers doing that at once on a fresh store collide ("migration expected
to match one row ... 0 found"). Holding the schema lock around the first use of each backend
makes the second process wait and then find the schema in place. SQLite stores lock a file in
the store directory; PostgreSQL stores take a server-wide advisory lock keyed on the database
prefix. A sweep's lock, taken all the time, lives in the store's Optuna database instead and
is held on the worker's own kept connection (``engine``), so a worker waiting for it holds no
connection beyond the one it keeps anyway (docs/coordination.md#connection-budget). A lock is
re-entrant within a thread: creating a store holds the schema lock around the first use of
each backend, which takes it again.
"""

from __future__ import annotations

import fcntl
import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from sqlalchemy import Engine, text
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


#: Locks whose name starts so live in the store's Optuna database (see :func:`store_lock`).
SWEEP_LOCK = "sweep-"


def sweep_lock_name(study_name: str) -> str:
    """The store lock a sweep's workers start trials under."""
    return f"{SWEEP_LOCK}{study_name}"


def summary_lock_name(study_name: str) -> str:
    """The store lock a sweep's summary is written under (one worker writes it).

    A sweep lock by its name: on PostgreSQL it is held, and waited for, on the worker's kept
    connection, so workers finishing together hold no extra connection while one writes.
    """
    return f"{SWEEP_LOCK}{study_name}:summary"


@contextmanager
def store_lock(
    spec: StoreSpec, url: str, name: str, engine: Engine | None = None
) -> Iterator[None]:
    """A named lock shared by every process using this store (file, advisory or proxy lock).

    Used for schema creation and to make "count the trials, then start one" atomic between
    workers, so a sweep never runs more than ``n_trials``. ``engine``: for a sweep's lock on
    PostgreSQL, the caller's kept engine on the Optuna database (``url``): the lock is held, and
    waited for, on its connection, while the caller's other work takes the engine's next one.
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
    if url.startswith("postgresql") and name.startswith(SWEEP_LOCK):
        key = advisory_key(spec, name)
        with _once(key, lambda: _advisory_lock(url, key, engine)):
            yield
        return
    if url.startswith("postgresql") and spec.server_url is not None:
        rendered, key = lock_database_url(spec.server_url), advisory_key(spec, name)
        with _once(key, lambda: _advisory_lock(rendered, key)):
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
def _advisory_lock(url: str, name: str, kept: Engine | None = None) -> Iterator[None]:
    """Hold ``name`` in the database at ``url``: on ``kept``'s connection, else on a new one."""
    if kept is not None:
        with advisory_lock_on(kept, url, name):
            yield
        return
    engine = engine_for(url)
    try:
        with advisory_lock_on(engine, url, name):
            yield
    finally:
        engine.dispose()


@contextmanager
def advisory_lock_on(engine: Engine, url: str, name: str) -> Iterator[None]:
    """Hold the advisory lock ``name`` on a connection of ``engine`` (a database at ``url``).

    The lock belongs to the connection's session, and a pooled connection (the proxy's) outlives
    this block: if unlocking fails, the connection is invalidated (closed, so the server drops
    the lock) rather than returned to the pool still holding it.
    """
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    with with_retries("take the store's lock", url, engine.connect) as connection:
        connection.execute(text("select pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            try:
                connection.execute(text("select pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
            except BaseException:
                connection.invalidate()
                raise
