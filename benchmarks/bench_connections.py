"""PostgreSQL connections a ``run --workers N`` sweep holds, and what that costs in wall time.

For each N, a digits sweep (``--trials`` trials of ``--epochs`` epochs, random search) runs as
``onecycle run --workers N`` on the local PostgreSQL server, once with this project's
connection budget and once with the libraries' default pools (``ONECYCLE_PG_POOLS=1``), one
after the other. Every connection carries one application name (``PGAPPNAME``) and
``pg_stat_activity`` is sampled every 50 ms. Printed per row: wall seconds, trials per second,
the median and peak connections while any was open, the peak of those held (open for more
than a second: kept, not one operation's), and the peak per worker.

    python benchmarks/bench_connections.py [--workers 1 4 8] [--trials 16] [--epochs 2]
        [--server postgresql://postgres@127.0.0.1:5432/]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import yaml
from sqlalchemy.engine import make_url

from storage.postgres import drop_databases

SPACE = {
    "cycle_min_lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "cycle_max_lr": {"low": 1e-3, "high": 1.0, "log": True},
}


def _sweep_file(folder: Path, trials: int, epochs: int) -> Path:
    config = {
        "name": "connections",
        "workload": {"builtin": "digits", "batch_size": 64, "epochs": epochs, "device": "cpu"},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "search": {"n_trials": trials, "sampler": "random", "pruner": "none", "space": SPACE},
    }
    path = folder / "connections.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


#: Open longer than this many seconds: a held connection, not one operation's.
HELD_S = 1.0


def _run(server: str, path: Path, workers: int, pools: bool) -> tuple[float, list[int], list[int]]:
    """Wall seconds, and the connections (all, held) sampled while the sweep ran."""
    prefix = f"conn{uuid.uuid4().hex[:8]}"
    name = f"onecycle-{prefix}"
    env = {**os.environ, "PGAPPNAME": name, "ONECYCLE_PG_POOLS": "1" if pools else "0"}
    command = [sys.executable, "-m", "sweeps", "run", str(path), "--workers", str(workers)]
    watcher = make_url(server).set(drivername="postgresql", database="postgres")
    counts: list[int] = []
    held: list[int] = []
    start = time.perf_counter()
    sweep = subprocess.Popen(
        [*command, "--store", server, "--db-prefix", prefix],
        env=env,
        cwd=path.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with psycopg.connect(watcher.render_as_string(hide_password=False)) as connection:
            connection.autocommit = True
            while sweep.poll() is None:
                row = connection.execute(
                    "select count(*), count(*) filter (where now() - backend_start "
                    "> make_interval(secs => %s)) from pg_stat_activity "
                    "where application_name = %s",
                    (HELD_S, name),
                ).fetchone()
                counts.append(int(row[0]) if row else 0)
                held.append(int(row[1]) if row else 0)
                time.sleep(0.05)
        wall = time.perf_counter() - start
        if sweep.returncode != 0:
            error = sweep.stderr.read().decode()[-1000:] if sweep.stderr else ""
            raise SystemExit(f"the sweep failed ({sweep.returncode}): {error}")
    finally:
        if sweep.poll() is None:
            sweep.kill()
        drop_databases(server, prefix)
    return wall, counts, held


def main() -> None:
    """Run each worker count with the budget and with default pools; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/")
    args = parser.parse_args()
    print(f"{args.trials} trials x {args.epochs} epochs of digits, random search, PostgreSQL")
    print(
        f"{'workers':>7} {'pools':>8} {'wall s':>7} {'trials/s':>8} "
        f"{'median':>6} {'peak':>5} {'held':>5} {'peak/worker':>11}"
    )
    with tempfile.TemporaryDirectory() as folder:
        path = _sweep_file(Path(folder), args.trials, args.epochs)
        for workers in args.workers:
            for pools in (False, True):
                wall, counts, held = _run(args.server, path, workers, pools)
                busy = [count for count in counts if count > 0] or [0]
                print(
                    f"{workers:>7} {'default' if pools else 'budget':>8} {wall:>7.1f} "
                    f"{args.trials / wall:>8.3f} {statistics.median(busy):>6.0f} "
                    f"{max(busy):>5} {max(held):>5} {max(busy) / workers:>11.2f}"
                )


if __name__ == "__main__":
    main()
