"""A worker waiting for a PostgreSQL store lock holds no connection; it gets the lock promptly.

The lock's holder keeps one connection (the advisory lock lives in its session); a waiter
tries again after a short pause and closes its connection in between, so a hundred waiting
workers cost the server nothing while they wait (docs/coordination.md#connection-budget).
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from sqlalchemy.engine import make_url

from storage import resolve_store
from storage.store_locks import POLL_MAX_S, store_lock
from tests.fixtures import unique_prefix
from tests.requirements import postgres_url

#: Open longer than this: a connection kept, not one try's.
KEPT_S = 0.3


def test_a_waiter_holds_no_connection_and_takes_the_lock_once_it_is_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = postgres_url()
    name = f"onecycle-{unique_prefix('lock')}"
    monkeypatch.setenv("PGAPPNAME", name)  # libpq reads it at each connect, in this process too
    spec = resolve_store(server, db_prefix=unique_prefix("lock"), env={})
    held, release, taken = threading.Event(), threading.Event(), threading.Event()

    def holder() -> None:
        with store_lock(spec, spec.optuna_url, "sweep-x"):
            held.set()
            release.wait(30)

    def waiter() -> None:
        held.wait(30)
        with store_lock(spec, spec.optuna_url, "sweep-x"):
            taken.set()

    threads = [threading.Thread(target=holder), threading.Thread(target=waiter)]
    for thread in threads:
        thread.start()
    watcher = make_url(server).set(drivername="postgresql", database="postgres")
    kept: list[int] = []
    totals: list[int] = []
    try:
        assert held.wait(30)
        url = watcher.render_as_string(hide_password=False)
        with psycopg.connect(url, application_name="watcher") as connection:
            connection.autocommit = True
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                total, old = connection.execute(
                    "select count(*), count(*) filter (where now() - backend_start "
                    "> make_interval(secs => %s)) from pg_stat_activity "
                    "where application_name = %s",
                    (KEPT_S, name),
                ).fetchone() or (0, 0)
                totals.append(total)
                kept.append(old)
                time.sleep(0.02)
        assert not taken.is_set(), "the waiter took a lock that was held"
        released = time.monotonic()
        release.set()
        assert taken.wait(10)
        waited = time.monotonic() - released
    finally:
        release.set()
        for thread in threads:
            thread.join(30)
    # The holder's connection is the only one kept; a try is open for a moment at most.
    assert kept[-1] == 1 and max(kept) == 1, kept
    assert max(totals) <= 2, totals
    # Freed, the lock is taken within the longest pause between tries (plus a loaded machine's
    # scheduling), not after a fixed long sleep.
    assert waited < POLL_MAX_S + 2.0, waited
