"""A sweep's lock on PostgreSQL costs its workers no connection beyond the one each keeps.

The lock lives in the store's Optuna database and is held, and waited for, on the worker's
own kept engine; the worker's other work meanwhile takes the engine's next connection. Two
"workers" here (two threads, each with its own kept engine that has connected once): while one
holds the lock and the other waits, the server sees one connection each, not two
(docs/coordination.md#connection-budget).
"""

from __future__ import annotations

import _thread
import hashlib
import threading
import time

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from storage import resolve_store
from storage.connect import engine_for
from storage.spec import StoreSpec
from storage.store_locks import advisory_key, store_lock, sweep_lock_name
from tests.fixtures import unique_prefix
from tests.later_drops import drop_later
from tests.requirements import postgres_url


def _database(server: str, spec: StoreSpec) -> None:
    """The store's Optuna database, empty (the lock needs nothing in it)."""
    admin = make_url(server).set(drivername="postgresql", database="postgres")
    database = make_url(spec.optuna_url).database
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'create database "{database}"')


def test_a_waiter_waits_on_its_kept_connection_and_takes_the_lock_once_it_is_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = postgres_url()
    prefix = unique_prefix("lock")
    name = f"onecycle-{prefix}"
    monkeypatch.setenv("PGAPPNAME", name)  # libpq reads it at each connect, in this process too
    spec = resolve_store(server, db_prefix=prefix, env={})
    _database(server, spec)
    engines = [engine_for(spec.optuna_url, kept=True) for _ in range(2)]
    held, release, taken = threading.Event(), threading.Event(), threading.Event()
    lock = sweep_lock_name("x")

    def worker(engine: Engine, first: bool) -> None:
        with engine.connect() as connection:  # its kept connection exists, as a worker's does
            connection.execute(text("select 1"))
        if not first:
            held.wait(30)
        with store_lock(spec, spec.optuna_url, lock, engine):
            if first:
                held.set()
                release.wait(30)
            else:
                taken.set()

    threads = [
        threading.Thread(target=worker, args=(engine, index == 0))
        for index, engine in enumerate(engines)
    ]
    for thread in threads:
        thread.start()
    watcher = make_url(server).set(drivername="postgresql", database="postgres")
    totals: list[int] = []
    try:
        assert held.wait(30)
        url = watcher.render_as_string(hide_password=False)
        with psycopg.connect(url, application_name="watcher", autocommit=True) as connection:
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                row = connection.execute(
                    "select count(*) from pg_stat_activity where application_name = %s", (name,)
                ).fetchone()
                totals.append(row[0] if row else 0)
                time.sleep(0.02)
        assert not taken.is_set(), "the waiter took a lock that was held"
        release.set()
        assert taken.wait(10), "the waiter never took the freed lock"
    finally:
        release.set()
        for thread in threads:
            thread.join(30)
        for engine in engines:
            engine.dispose()
        drop_later(server, prefix)
    # Holder and waiter: one connection each, the ones their engines keep anyway.
    assert max(totals) == 2 and min(totals) == 2, totals


def test_a_wait_cut_short_leaves_no_pooled_connection_that_may_hold_the_lock() -> None:
    """Ctrl+C while waiting: the server may have just granted the lock, so the kept connection
    must be closed (the server drops whatever it held), not go back to the pool. SQLAlchemy
    invalidates a connection whose statement a ``BaseException`` interrupted; this holds it to
    that, since the lock now waits on a pooled connection."""
    server = postgres_url()
    prefix = unique_prefix("lock")
    spec = resolve_store(server, db_prefix=prefix, env={})
    _database(server, spec)
    engine = engine_for(spec.optuna_url, kept=True)
    lock = sweep_lock_name("x")
    holder_url = make_url(spec.optuna_url).set(drivername="postgresql", query={})
    try:
        with engine.connect() as connection:
            before = connection.execute(text("select pg_backend_pid()")).scalar()
        with psycopg.connect(holder_url.render_as_string(hide_password=False)) as holder:
            digest = hashlib.sha256(advisory_key(spec, lock).encode()).digest()
            key = int.from_bytes(digest[:8], "big", signed=True)  # the same lock, another session
            holder.execute("select pg_advisory_lock(%s)", (key,))
            threading.Timer(0.5, _thread.interrupt_main).start()
            with pytest.raises(KeyboardInterrupt), store_lock(spec, spec.optuna_url, lock, engine):
                pytest.fail("took a lock another session holds")
        with engine.connect() as connection:
            after = connection.execute(text("select pg_backend_pid()")).scalar()
        assert after != before, "the interrupted connection went back to the pool"
    finally:
        engine.dispose()
        drop_later(server, prefix)
