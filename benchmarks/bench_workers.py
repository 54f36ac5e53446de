"""Many workers on one study: direct to PostgreSQL against through ``onecycle serve``.

For each N, N worker processes share one study of ``--trials-per-worker`` x N trials on the
local PostgreSQL server, once with ``--store postgresql://...`` and once through a storage
proxy (``onecycle serve`` on loopback, started for the run). A worker runs what the sweep
worker runs to coordinate, without torch or MLflow: the store-wide lock around counting the
trials and ``ask``, a heartbeat, a trivial objective, ``tell``. Printed per row: trials per
second over the whole run, the peak PostgreSQL connections of the workers and of the proxy
(application names, ``pg_stat_activity`` sampled every 50 ms), and the median and 95th
percentile of "ask" (waiting for the lock, counting, asking) and of "tell", over every trial.

    python benchmarks/bench_workers.py [--workers 1 4 16 32] [--trials-per-worker 20]
        [--server postgresql://postgres@127.0.0.1:5432/]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/

from storage import open_store, resolve_store
from storage.postgres import drop_databases
from storage.store_locks import store_lock, sweep_lock_name
from storage.trial_queries import count_by_state
from tests.pg_activity import ConnectionPeaks

STUDY = "bench-workers"
HERE = Path(__file__).resolve().parent


def worker(store_setting: str, prefix: str, n_trials: int, out: Path) -> None:
    """One worker's loop; its ask and tell seconds go to ``out`` as JSON."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")  # heartbeats outside Study.optimize, as the sweep worker
    spec = resolve_store(store_setting, db_prefix=prefix)
    asks, tells = [], []
    with open_store(spec, create=False) as store:
        storage = store.heartbeat_storage(10, 20)
        study = optuna.load_study(
            study_name=STUDY, storage=storage, sampler=optuna.samplers.RandomSampler()
        )
        while True:
            started = time.perf_counter()
            with store_lock(spec, spec.optuna_url, sweep_lock_name(STUDY), store.kept_engine):
                found = count_by_state(study)
                if found["complete"] >= n_trials:
                    break
                trial = study.ask() if found["complete"] + found["running"] < n_trials else None
            if trial is None:
                time.sleep(0.05)
                continue
            asks.append(time.perf_counter() - started)
            storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
            value = trial.suggest_float("x", 0.0, 1.0) ** 2
            started = time.perf_counter()
            study.tell(trial, value)
            tells.append(time.perf_counter() - started)
    out.write_text(json.dumps({"ask": asks, "tell": tells}))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(
    server: str, prefix: str, folder: Path, app: str
) -> tuple[subprocess.Popen[bytes], str]:
    port, mlflow_port = _free_port(), _free_port()
    log = folder / "serve.log"
    serve = ["serve", "--store", server, "--db-prefix", prefix]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sweeps",
            *serve,
            "--port",
            str(port),
            "--mlflow-port",
            str(mlflow_port),
        ],
        cwd=folder,
        env={**os.environ, "PGAPPNAME": app},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while "serving" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"onecycle serve did not start: {log.read_text()[-1000:]}")
        time.sleep(0.2)
    return process, f"onecycle://127.0.0.1:{port}"


def run(server: str, workers: int, per_worker: int, proxied: bool) -> dict[str, float]:
    """One row: N workers direct or through a proxy."""
    prefix = f"benchw{uuid.uuid4().hex[:8]}"
    n_trials = workers * per_worker
    worker_app, proxy_app = f"w-{prefix}", f"p-{prefix}"
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        direct = resolve_store(server, db_prefix=prefix, env={})
        with open_store(direct) as store:
            optuna.create_study(study_name=STUDY, storage=store.optuna_storage)
        serving = _serve(server, prefix, folder, proxy_app) if proxied else None
        setting = serving[1] if serving else server
        try:
            with ConnectionPeaks(server, [worker_app, proxy_app]) as peaks:
                started = time.perf_counter()
                processes = [
                    subprocess.Popen(
                        [
                            sys.executable,
                            __file__,
                            "--worker",
                            setting,
                            prefix,
                            str(n_trials),
                            str(folder / f"w{i}.json"),
                        ],
                        env={**os.environ, "PGAPPNAME": worker_app},
                        cwd=folder,
                    )
                    for i in range(workers)
                ]
                codes = [process.wait() for process in processes]
                wall = time.perf_counter() - started
            if any(codes):
                raise SystemExit(f"a worker failed: exit codes {codes}")
            with open_store(direct) as store:
                study = optuna.load_study(study_name=STUDY, storage=store.optuna_storage)
                complete = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
            if complete != n_trials:
                raise SystemExit(f"{complete} trials complete, wanted {n_trials}")
        finally:
            if serving is not None:
                serving[0].terminate()
                serving[0].wait(timeout=60)
            drop_databases(server, prefix)
        asks = [s for i in range(workers) for s in _read(folder / f"w{i}.json")["ask"]]
        tells = [s for i in range(workers) for s in _read(folder / f"w{i}.json")["tell"]]
    return {
        "trials_per_s": n_trials / wall,
        "workers_peak": peaks.peaks[worker_app],
        "proxy_peak": peaks.peaks[proxy_app],
        "ask_p50_ms": 1000 * statistics.median(asks),
        "ask_p95_ms": 1000 * statistics.quantiles(asks, n=20)[-1] if len(asks) > 1 else 0.0,
        "tell_p50_ms": 1000 * statistics.median(tells),
        "tell_p95_ms": 1000 * statistics.quantiles(tells, n=20)[-1] if len(tells) > 1 else 0.0,
    }


def _read(path: Path) -> dict[str, list[float]]:
    return dict(json.loads(path.read_text()))


def main() -> None:
    """Each N direct and through the proxy, side by side; print the table."""
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        setting, prefix, n_trials, out = sys.argv[2:6]
        worker(setting, prefix, int(n_trials), Path(out))
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--trials-per-worker", type=int, default=20)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/")
    args = parser.parse_args()
    print(f"{args.trials_per_worker} trials per worker, trivial objective, local PostgreSQL")
    header = (
        f"{'workers':>7} {'store':>6} {'trials/s':>8} {'conns(workers)':>14} {'conns(proxy)':>12}"
        f" {'ask p50 ms':>10} {'ask p95 ms':>10} {'tell p50 ms':>11} {'tell p95 ms':>11}"
    )
    print(header)
    for workers in args.workers:
        for proxied in (False, True):
            row = run(args.server, workers, args.trials_per_worker, proxied)
            print(
                f"{workers:>7} {'proxy' if proxied else 'direct':>6} {row['trials_per_s']:>8.1f} "
                f"{row['workers_peak']:>14} {row['proxy_peak']:>12} {row['ask_p50_ms']:>10.1f} "
                f"{row['ask_p95_ms']:>10.1f} {row['tell_p50_ms']:>11.1f} "
                f"{row['tell_p95_ms']:>11.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
