"""A 4-worker sweep on PostgreSQL keeps within its connection budget (docs/coordination.md).

Every connection the sweep's processes open carries one application name (libpq's
``PGAPPNAME``, inherited by the workers and their tracking writers), and ``pg_stat_activity``
is sampled while the sweep runs. Before the budget the same sweep held 25 connections most of
the time and 39 at its peak.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from storage import resolve_store
from tests.fixtures import digits_sweep, unique_prefix, write_sweep
from tests.integration_tests.test_many_workers import check_sweep
from tests.later_drops import drop_later
from tests.requirements import postgres_url

WORKERS = 4
#: Held: open for more than this many seconds (a kept connection, not one operation's).
HELD_S = 1.0
#: The few beyond two per worker: the lock holder's second, and connections opened for one
#: operation (an MLflow call, a heartbeat beside an ask) that close after it.
FEW = 4


@pytest.mark.slow
def test_four_workers_hold_at_most_two_connections_each_plus_a_fixed_few(
    tmp_path: Path,
) -> None:
    server = postgres_url()
    prefix = unique_prefix("budget")
    spec = resolve_store(server, db_prefix=prefix, env={})
    path = write_sweep(tmp_path, digits_sweep("budget", 8, batch_size=64, epochs=2))
    name = f"onecycle-{prefix}"
    command = [sys.executable, "-m", "sweeps", "run", str(path), "--workers", str(WORKERS)]
    sweep = subprocess.Popen(
        [*command, "--store", server, "--db-prefix", prefix],
        env={**os.environ, "PGAPPNAME": name},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    watcher = make_url(server).set(drivername="postgresql", database="postgres")
    totals: list[int] = []
    held: list[int] = []
    in_store: list[int] = []
    try:
        with psycopg.connect(watcher.render_as_string(hide_password=False)) as connection:
            connection.autocommit = True
            while sweep.poll() is None:
                rows = connection.execute(
                    "select datname, count(*), count(*) filter (where now() - backend_start "
                    "> make_interval(secs => %s)) from pg_stat_activity "
                    "where application_name = %s group by datname",
                    (HELD_S, name),
                ).fetchall()
                totals.append(sum(count for _, count, _ in rows))
                held.append(sum(old for _, _, old in rows))
                in_store.append(sum(count for db, count, _ in rows if db.startswith(prefix)))
                time.sleep(0.05)
        assert sweep.wait() == 0, sweep.stderr.read().decode()[-2000:] if sweep.stderr else ""
        check_sweep(spec, "budget", 8)
    finally:
        if sweep.poll() is None:
            sweep.kill()
        drop_later(server, prefix)
    busy = [count for count in in_store if count > 0]
    assert busy, "no connection was ever seen: the application name did not reach them"
    # Steady state: a worker's Optuna storage and its tracking writer's direct writers.
    assert statistics.median(busy) <= 2 * WORKERS, sorted(busy)
    # Held at every sample: those two per worker, and the lock holder's second (a waiter waits
    # on the connection it keeps anyway).
    assert max(held) <= 2 * WORKERS + 1, sorted(held)[-20:]
    # Everything at every sample: two per worker plus a fixed few, however many workers wait.
    assert max(totals) <= 2 * WORKERS + FEW, sorted(totals)[-20:]
