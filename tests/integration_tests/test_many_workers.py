"""Several workers on one sweep: exact trial counts, one MLflow run each, dead workers recovered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from storage import Store, StoreSpec, open_store, resolve_store
from sweeps.cli import main
from sweeps.runner import LOST_REASON, STALE_REASON, create_or_resume, load_config, worker_env
from tests.conftest import store_args
from tests.fixtures import digits_sweep, unique_prefix, write_sweep
from tests.private_postgres import private_postgres

pytestmark = pytest.mark.slow  # worker processes and whole sweeps; see pyproject's markers

NewSpec = Callable[..., StoreSpec]
HEARTBEAT_S = 2


def tiny_sweep(tmp_path: Path, name: str, n_trials: int, epochs: int = 1) -> Path:
    return write_sweep(tmp_path, digits_sweep(name, n_trials, epochs=epochs))


def check_sweep(spec: StoreSpec, name: str, n_trials: int) -> None:
    """Exactly ``n_trials`` complete, numbers never repeated, one ended MLflow run per trial.

    (Plain ``run --workers`` sweeps are checked with this in ``test_distinct_trials.py``.)
    """
    with open_store(spec) as store:
        record = store.sweeps.get(name)
        study = optuna.load_study(study_name=name, storage=store.optuna_storage)
        complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        assert len(complete) == n_trials
        numbers = [t.number for t in study.trials]
        assert len(numbers) == len(set(numbers))
        runs = store.mlflow.search_runs(
            [record.mlflow_experiment_id],
            filter_string="tags.`onecycle.trial_number` != ''",
            max_results=1000,
        )
        by_trial = [r.data.tags["onecycle.trial_number"] for r in runs]
        assert len(by_trial) == len(set(by_trial))
        # A trial asked just as its worker lost the store never beat, never trained and never
        # opened a run: it is failed as lost (LOST_REASON), and only it may have no run.
        runless = [t for t in study.trials if str(t.number) not in by_trial]
        assert all(_lost_before_start(t) for t in runless), [
            (t.number, t.state.name, t.user_attrs) for t in runless
        ]
        assert all(r.info.status != "RUNNING" for r in runs)
        assert record.status == "finished"


def _lost_before_start(trial: optuna.trial.FrozenTrial) -> bool:
    return (
        trial.state == optuna.trial.TrialState.FAIL
        and trial.user_attrs.get("failure_reason") == LOST_REASON
        and "mlflow_run_id" not in trial.user_attrs
    )


@pytest.mark.parametrize(
    ("backend", "workers", "n_trials", "fused"),
    [("postgresql", 3, 24, 4), ("sqlite", 2, 8, 2)],
)
def test_fused_workers_share_a_sweep(
    new_spec: NewSpec, backend: str, workers: int, n_trials: int, fused: int, tmp_path: Path
) -> None:
    """Workers writing fused batches in bulk at once: numbers 0..N-1 with no gap or repeat,
    exactly n_trials complete, every trial's run ended."""
    spec = new_spec(artifacts=str(tmp_path / "artifacts"))
    name = f"fused-many-{backend}"
    path = tiny_sweep(tmp_path, name, n_trials)
    command = ["run", str(path), "--workers", str(workers), "--fused", str(fused)]
    assert main([*command, *store_args(spec)]) == 0
    check_sweep(spec, name, n_trials)
    with open_store(spec) as store:
        study = optuna.load_study(study_name=name, storage=store.optuna_storage)
        numbers = sorted(t.number for t in study.trials)
        assert numbers == list(range(len(numbers)))


def _worker(spec: StoreSpec, name: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sweeps", "--debug", "worker", name, "--quiet", *store_args(spec)],
        env={**os.environ, "ONECYCLE_HEARTBEAT_S": str(HEARTBEAT_S)},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def _running(store: Store, name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=store.optuna_storage)
    return study.get_trials(states=(optuna.trial.TrialState.RUNNING,))


def test_sigkilled_worker_trial_is_failed_retried_and_its_run_closed(
    new_spec: NewSpec, tmp_path: Path
) -> None:
    spec = new_spec(artifacts=str(tmp_path / "artifacts"))
    path = tiny_sweep(tmp_path, "killed", n_trials=2, epochs=400)
    with open_store(spec) as store:
        create_or_resume(store, load_config(path))
    logs = tmp_path / "victim.log", tmp_path / "survivor.log"
    victim, survivor = _worker(spec, "killed", logs[0]), _worker(spec, "killed", logs[1])
    try:
        with open_store(spec) as store:
            deadline = time.monotonic() + 120
            while sum("mlflow_run_id" in t.user_attrs for t in _running(store, "killed")) < 2:
                assert time.monotonic() < deadline and victim.poll() is None  # both training
                time.sleep(0.2)
            (doomed,) = [
                t
                for t in _running(store, "killed")
                if t.user_attrs["worker"].endswith(f":{victim.pid}")
            ]
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
            killed_at = time.monotonic()
            study = optuna.load_study(study_name="killed", storage=store.optuna_storage)
            while study.trials[doomed.number].state == optuna.trial.TrialState.RUNNING:
                assert time.monotonic() - killed_at < 30, (
                    f"the dead worker's trial was not failed; survivor alive: "
                    f"{survivor.poll() is None}; its log: {logs[1].read_text()[-3000:]}"
                )
                time.sleep(0.1)
            failed_after = time.monotonic() - killed_at
            failed = study.trials[doomed.number]
            assert failed.state == optuna.trial.TrialState.FAIL
            deadline = time.monotonic() + 10  # the retry is enqueued right after the FAIL
            while not (
                retried := [
                    t for t in study.trials if t.system_attrs.get("failed_trial") == failed.number
                ]
            ):
                assert time.monotonic() < deadline, "the failed trial was not retried"
                time.sleep(0.1)
            assert retried[0].params == failed.params
            run_id = failed.user_attrs["mlflow_run_id"]
            deadline = time.monotonic() + 30
            while store.mlflow.get_run(run_id).info.status == "RUNNING":
                assert time.monotonic() < deadline
                time.sleep(0.2)
            run = store.mlflow.get_run(run_id)
            assert run.info.status == "FAILED"
            assert run.data.tags["onecycle.failure_reason"] in (
                STALE_REASON,
                "the process that owned this run ended without closing it",
            )
        # stale after two heartbeat intervals, checked every half interval, plus a little for
        # the database round trips
        assert failed_after < 2.5 * HEARTBEAT_S + 1.5
    finally:
        for process in (victim, survivor):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        assert survivor.wait(timeout=120) in (0, 130), logs[1].read_text()[-3000:]


def test_sweep_stops_when_too_many_trials_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "always_fails.py").write_text(
        "def train(ctx):\n    raise RuntimeError('broken training code')\n"
    )
    config = digits_sweep("broken", 10)
    config["workload"] = {"entrypoint": "always_fails:train", "device": "cpu", "epochs": 1}
    config["search"]["max_failure_rate"] = 0.5
    path = write_sweep(tmp_path, config)
    store = str(tmp_path / "store")
    assert main(["run", str(path), "--store", store]) == 1
    err = capsys.readouterr().err
    assert "sweep 'broken' stopped: 4 of 4 trials failed, above search.max_failure_rate=0.5" in err
    assert main(["status", "broken", "--json", "--store", store]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("[") :])[0]
    assert report["status"] == "failed"
    assert {t["failure_reason"] for t in report["trials"] if t["state"] == "FAIL"} == {
        "RuntimeError: broken training code"
    }


def test_worker_environment_pins_gpus_round_robin_or_shares_cores() -> None:
    envs = [worker_env(i, 4, ["0", "1"]) for i in range(4)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0", "1"]
    assert int(worker_env(0, 2, [])["ONECYCLE_TORCH_THREADS"]) >= 1


def test_local_workers_get_the_store_in_their_environment_not_their_command_line() -> None:
    """``ps`` shows every user a command line; ``/proc/PID/environ`` is the owner's alone."""
    from sweeps.cli._store_options import store_env
    from sweeps.runner._local_workers import worker_commands

    url = "postgresql://ann:pa55word@db:5432/"
    store = store_env({"store": url, "db_prefix": "team", "mlflow_uri": None})
    assert store == {"ONECYCLE_STORE": url, "ONECYCLE_DB_PREFIX": "team"}
    assert all("pa55word" not in " ".join(c) for c in worker_commands("s", ["--fused", "2"], 2))
    assert worker_env(0, 2, [], store)["ONECYCLE_STORE"] == url


def test_sweep_rides_out_a_postgresql_restart(tmp_path: Path) -> None:
    """The server restarts mid-sweep (its own private one: restarting the shared test server
    would break whatever else is using it); the worker rides it out and finishes."""
    with private_postgres(tmp_path / "server") as server:
        spec = resolve_store(
            server.url, db_prefix=unique_prefix(), artifacts=str(tmp_path / "artifacts"), env={}
        )
        _ride_out_a_restart(spec, tmp_path, server.restart)


def _ride_out_a_restart(spec: StoreSpec, tmp_path: Path, restart: Callable[[], None]) -> None:
    path = tiny_sweep(tmp_path, "restart", n_trials=12, epochs=3)
    worker = subprocess.Popen(
        [sys.executable, "-m", "sweeps", "run", str(path), *store_args(spec)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while True:
        with open_store(spec) as store:
            try:
                study = optuna.load_study(study_name="restart", storage=store.optuna_storage)
                done = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
            except KeyError:
                done = 0
        if done >= 2:
            break
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.3)
    restart()
    assert worker.wait(timeout=300) == 0, worker.stderr.read() if worker.stderr else ""
    with open_store(spec) as store:
        study = optuna.load_study(study_name="restart", storage=store.optuna_storage)
        finished = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        assert len(finished) == 12
