"""Sweeps through ``onecycle serve``: many workers, no database connection in any of them.

A real proxy process (Optuna's gRPC storage service, the coordination calls, an MLflow
tracking server) serves a PostgreSQL store on loopback; real worker processes use
``--store onecycle://127.0.0.1:PORT``. Every connection carries an application name
(``PGAPPNAME``): one for the proxy and its MLflow server, another for the workers, whose count
must stay at zero.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import psycopg
import pytest
import yaml
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from storage import StoreSpec, open_store, resolve_store
from storage.server_env import JOBS_SWITCH
from tests.failures_tests.store_state import state_of
from tests.failures_tests.test_killed_worker import SWEEP as KILLED
from tests.fixtures import command_lines, free_port, servers_of, unique_prefix
from tests.integration_tests.test_many_workers import check_sweep
from tests.later_drops import drop_later
from tests.pg_activity import ConnectionPeaks
from tests.requirements import postgres_url, require_module

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 16
TRIALS = 32
SWEEPS = (sys.executable, "-m", "sweeps")


def trivial_sweep(folder: Path, name: str, n_trials: int, sleep_s: float = 0.0) -> Path:
    """A random-search sweep whose trials do no training (the coordination benchmark's).

    ``sleep_s``: each trial waits that long, so trials are running when the test acts.
    """
    shutil.copy(ROOT / "benchmarks" / "trivial_training.py", folder / "trivial_training.py")
    config = {
        "name": name,
        "workload": {
            "entrypoint": "trivial_training:train",
            "device": "cpu",
            "epochs": 1,
            "options": {"sleep_s": sleep_s},
        },
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "search": {
            "n_trials": n_trials,
            "sampler": "random",
            "pruner": "none",
            "space": {
                "cycle_min_lr": {"low": 1e-4, "high": 1e-2, "log": True},
                "cycle_max_lr": {"low": 1e-3, "high": 1.0, "log": True},
            },
        },
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


#: The many processes these tests start run at a lower CPU priority (coreutils ``nice``), so
#: that they do not starve the tests running beside them on a 2-core machine.
NICE = ("nice", "-n", "10")


class ProxyProcess:
    """``onecycle serve`` for a PostgreSQL store on two loopback ports; it can be stopped and
    started again on the same ports."""

    def __init__(self, server: str, prefix: str, folder: Path) -> None:
        self.server, self.prefix, self.folder = server, prefix, folder
        self.app = f"proxy-{prefix}"
        self.ports = (free_port(), free_port())
        self.address = f"onecycle://127.0.0.1:{self.ports[0]}"
        self.spec = resolve_store(server, db_prefix=prefix, env={})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start serving; return once it says so."""
        log = self.folder / "serve.log"
        serve = [*NICE, *SWEEPS, "serve", "--store", self.server, "--db-prefix", self.prefix]
        flags = ["--port", str(self.ports[0]), "--mlflow-port", str(self.ports[1])]
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [*serve, *flags],
                cwd=self.folder,
                env={**os.environ, "PGAPPNAME": self.app},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while "serving" not in log.read_text():
            assert self.process.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "onecycle serve did not start within 120 s"
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM, as ``docker stop`` or Ctrl+C would: it must exit 0, its MLflow server too."""
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=30) == 0, (self.folder / "serve.log").read_text()[-2000:]
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """One proxy for the module's tests (each sweep has its own name), in one xdist group."""
    require_module("grpc", "the storage proxy needs grpcio (the `proxy` extra)")
    proxy = ProxyProcess(postgres_url(), unique_prefix("proxy"), tmp_path_factory.mktemp("proxy"))
    try:
        proxy.start()
        yield proxy
    finally:
        try:
            proxy.stop()
        finally:
            drop_later(proxy.server, proxy.prefix)


@pytest.mark.slow
@pytest.mark.xdist_group("storage-proxy")  # one pytest worker starts the module's proxy once
def test_sixteen_workers_through_the_proxy(served: ProxyProcess, tmp_path: Path) -> None:
    """16 workers, 32 trials: exact counts, distinct configurations, every run ended, the
    proxy's connections a fixed few and none from the workers."""
    name = "through-proxy"
    path = trivial_sweep(tmp_path, name, TRIALS)
    worker_app = f"workers-{served.prefix}"
    # The proxy's MLflow server got the database URL (and its password) in its environment:
    # no command line names the database.
    assert not [line for line in command_lines() if f"/{served.prefix}_mlflow" in line]
    command = [*NICE, *SWEEPS, "run", str(path), "--store", served.address]
    with ConnectionPeaks(served.server, (served.app, worker_app)) as connections:
        done = subprocess.run(
            [*command, "--workers", str(WORKERS)],
            cwd=tmp_path,
            env={**os.environ, "PGAPPNAME": worker_app, "ONECYCLE_TORCH_THREADS": "1"},
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{TRIALS} finished ({TRIALS} complete" in done.stdout, done.stdout[-2000:]
    # Read back through the proxy too: what a worker sees is what the database holds.
    with open_store(resolve_store(served.address, env={})) as store:
        assert store.sweeps.get(name).status == "finished"
    check_sweep(served.spec, name, TRIALS)
    with open_store(served.spec) as store:
        study = optuna.load_study(study_name=name, storage=store.optuna_storage)
        trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * TRIALS
    assert sorted(t.number for t in trials) == list(range(TRIALS))
    configurations = {tuple(sorted(t.params.items())) for t in trials}
    assert len(configurations) == TRIALS
    assert len({t.user_attrs["worker"] for t in trials}) > 1
    assert connections.peaks[worker_app] == 0, connections.peaks
    # Optuna's pool (4 kept, 8 more under load), MLflow's (2 + 6), the lock's one.
    assert 0 < connections.peaks[served.app] <= 21, connections.peaks


@pytest.mark.xdist_group("storage-proxy")
def test_the_proxys_mlflow_server_runs_no_job_runner(served: ProxyProcess) -> None:
    """MLflow's server jobs are off (storage.server_env): eight fewer processes importing MLflow,
    and a restart that comes back sooner."""
    server = servers_of(f"/{served.prefix}_mlflow")
    assert server and all(env[JOBS_SWITCH] == "false" for _, env in server)
    assert not [line for line, _ in server if "mlflow.server.jobs" in line]


def test_a_proxy_address_takes_no_password_and_an_absent_proxy_is_one_line(
    tmp_path: Path,
) -> None:
    """A password in a proxy address is refused without being printed (exit 2); a proxy that
    is not there is named in one line (exit 1); commands that need the databases say so."""
    require_module("grpc", "the storage proxy needs grpcio (the `proxy` extra)")
    command = [*SWEEPS, "list", "--store"]
    bad = subprocess.run(
        [*command, "onecycle://ann:s3cret@127.0.0.1:1"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert "s3cret" not in bad.stderr + bad.stdout
    assert "no user, password, path or query" in bad.stderr
    port = free_port()
    absent = subprocess.run(
        [*command, f"onecycle://127.0.0.1:{port}"], capture_output=True, text=True, timeout=120
    )
    assert absent.returncode == 1
    lines = absent.stderr.strip().splitlines()
    assert len(lines) == 1 and f"onecycle://127.0.0.1:{port}" in lines[0], absent.stderr
    assert "onecycle serve" in lines[0]
    info = subprocess.run(
        [*SWEEPS, "store", "info", "--store", f"onecycle://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
    )
    assert info.returncode == 2 and "not through a storage proxy" in info.stderr, info.stderr


@pytest.mark.slow
@pytest.mark.xdist_group("storage-proxy")
def test_a_worker_killed_behind_the_proxy_is_failed_by_heartbeat_and_retried(
    served: ProxyProcess, tmp_path: Path
) -> None:
    """Heartbeats and the stale-trial check go through the proxy: a worker that dies mid-trial
    leaves a RUNNING trial; the next worker fails it as stale, retries it and ends its run."""
    path = tmp_path / "killed.yaml"
    path.write_text(KILLED.format(marker=tmp_path / "marker"))
    env = {**os.environ, "ONECYCLE_HEARTBEAT_S": "1", "PYTHONPATH": str(ROOT)}
    command = [*SWEEPS, "run", str(path), "--store", served.address]
    died = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=300)
    assert died.returncode == 5, died.stderr[-2000:]
    left = state_of(served.spec, "killed")
    assert left.status == "running" and left.trials == ["RUNNING"]
    time.sleep(3)  # past the grace of 1 s heartbeats
    again = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-2000:]
    state = state_of(served.spec, "killed")
    assert state.status == "finished" and state.parent == "FINISHED"
    assert state.trials == ["FAIL", "COMPLETE", "COMPLETE"]
    assert "RUNNING" not in state.runs and state.runs.count("FAILED") == 1
    with open_store(served.spec) as store:
        study = optuna.load_study(study_name="killed", storage=store.optuna_storage)
        killed, retried = study.get_trials()[:2]
        assert retried.params == killed.params  # Optuna's retry callback, through the proxy


@pytest.mark.slow
@pytest.mark.xdist_group("storage-proxy")  # last of the group: it restarts the shared proxy
def test_workers_wait_for_a_proxy_that_restarts_mid_sweep(
    served: ProxyProcess, tmp_path: Path
) -> None:
    """The proxy stops (SIGTERM) with trials still to run and starts again on the same ports:
    the workers' calls wait for it (a running trial's tell and heartbeats included) and the
    sweep ends with exactly its trials, each run ended."""
    name, n_trials = "restarted", 20
    path = trivial_sweep(tmp_path, name, n_trials, sleep_s=0.3)
    sweep = subprocess.Popen(
        [*SWEEPS, "run", str(path), "--store", served.address, "--workers", "2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while complete(served.spec, name) < 3:
            assert sweep.poll() is None, sweep.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "no trial completed within 180 s"
            time.sleep(0.2)
        served.stop()
        stopped_at = complete(served.spec, name)
        time.sleep(2)
        served.start()
        out, err = sweep.communicate(timeout=300)
        assert sweep.returncode == 0, f"{out[-3000:]}\n{err[-2000:]}"  # workers' lines: stdout
        assert stopped_at < n_trials
        check_sweep(served.spec, name, n_trials)
    finally:
        if sweep.poll() is None:
            sweep.kill()


def complete(spec: StoreSpec, name: str) -> int:
    """COMPLETE trials of study ``name`` in the store's Optuna database (0 before it exists):
    one query, so that polling does not load the machine the sweep under test runs on."""
    url = make_url(spec.optuna_url).set(drivername="postgresql", query={})
    query = (
        "select count(*) from trials t join studies s on s.study_id = t.study_id "
        "where s.study_name = %s and t.state = 'COMPLETE'"
    )
    try:
        with psycopg.connect(url.render_as_string(hide_password=False)) as connection:
            found = connection.execute(query, (name,)).fetchone()
    except psycopg.Error:
        return 0
    return int(found[0]) if found else 0
