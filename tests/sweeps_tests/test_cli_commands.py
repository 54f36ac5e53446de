"""``worker``, ``train``, ``ui`` and a user's own training function, through the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from storage import open_store, resolve_store
from storage.server_env import JOBS_SWITCH
from sweeps.cli import main
from sweeps.runner import create_or_resume, load_config
from tests.fixtures import (
    EXAMPLES,
    command_lines,
    example_sweep,
    free_port,
    servers_of,
    write_sweep,
)


def small_sweep(tmp_path: Path, name: str = "small", n_trials: int = 3) -> Path:
    config = example_sweep("digits", name=name, epochs=2, options={"hidden": [32]})
    config["search"].update(n_trials=n_trials, pruner="none")
    return write_sweep(tmp_path, config)


@pytest.mark.slow  # a whole sweep
def test_worker_joins_a_sweep_from_the_store_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = str(tmp_path / "store")
    with open_store(resolve_store(store_dir, env={})) as store:
        create_or_resume(store, load_config(small_sweep(tmp_path)))
    assert main(["worker", "small", "--store", store_dir]) == 0
    assert main(["status", "small", "--json", "--store", store_dir]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("[") :])[0]
    assert report["counts"]["complete"] == 3 and report["status"] == "finished"
    assert all(t["worker"] for t in report["trials"])
    assert main(["worker", "nope", "--store", store_dir]) == 2
    assert "no sweep named 'nope'" in capsys.readouterr().err
    assert main(["summary", "small", "--store", store_dir]) == 0
    assert "optimization_history.png, param_importances.png, best_deepspeed_config.json" in (
        capsys.readouterr().out
    )


def test_train_with_best_params_tracked_and_untracked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = small_sweep(tmp_path)
    params = tmp_path / "params.json"
    params.write_text(
        json.dumps(
            {
                "scheduler": {
                    "type": "OneCycle",
                    "params": {
                        "cycle_min_lr": 0.01,
                        "cycle_max_lr": 0.1,
                        "cycle_first_step_size": 10,
                    },
                }
            }
        )
    )
    untracked_store = tmp_path / "untracked"
    assert (
        main(
            [
                "train",
                str(sweep),
                "--params",
                str(params),
                "--no-track",
                "--store",
                str(untracked_store),
            ]
        )
        == 0
    )
    assert "val_accuracy:" in capsys.readouterr().out
    assert not untracked_store.exists()
    store_dir = tmp_path / "tracked"
    assert main(["train", str(sweep), "--params", str(params), "--store", str(store_dir)]) == 0
    assert "tracked as MLflow run" in capsys.readouterr().out
    with open_store(resolve_store(str(store_dir), env={})) as store:
        experiment = store.mlflow.get_experiment_by_name("small")
        runs = store.mlflow.search_runs(
            [experiment.experiment_id], filter_string="tags.`onecycle.trial_number` != ''"
        )
        assert len(runs) == 1 and runs[0].info.status == "FINISHED"
        assert len(store.mlflow.get_metric_history(runs[0].info.run_id, "lr")) == 2 * 22
    params.write_text(json.dumps({"cycle_min_lr": 0.5, "cycle_max_lr": 0.1}))
    assert main(["train", str(sweep), "--params", str(params), "--no-track"]) == 2
    assert "`cycle_min_lr` must be <= `cycle_max_lr`" in capsys.readouterr().err


@pytest.mark.slow  # a whole sweep
def test_user_entrypoint_sweep_is_tracked_without_logging_code(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "custom_train.py", tmp_path / "custom_train_copy.py")
    config = example_sweep("custom", entrypoint="custom_train_copy:train", epochs=3)
    config["search"].update(n_trials=3, pruner="none")
    sweep = write_sweep(tmp_path, config, "custom")
    store_dir = str(tmp_path / "store")
    assert main(["run", str(sweep), "--store", store_dir]) == 0
    with open_store(resolve_store(store_dir, env={})) as store:
        record = store.sweeps.get("custom-breast-cancer")
        runs = store.mlflow.search_runs(
            [record.mlflow_experiment_id], filter_string="tags.`onecycle.trial_number` != ''"
        )
        assert len(runs) == 3
        for run in runs:
            steps = int(run.data.metrics["steps"])
            assert steps == 3 * (455 // 32)
            for key in ("lr", "momentum", "train_loss"):
                assert len(store.mlflow.get_metric_history(run.info.run_id, key)) == steps
            assert len(store.mlflow.get_metric_history(run.info.run_id, "val_accuracy")) == 3


@pytest.mark.slow
def test_ui_serves_the_store_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sweeps",
            "ui",
            "--store",
            str(tmp_path / "store"),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                    assert reply.status == 200
                # The backend URI (which would carry a PostgreSQL password) is on no command line.
                database = str(tmp_path / "store" / "mlflow.db")
                assert not [line for line in command_lines() if database in line]
                # MLflow's job runner and its Huey consumers are not started (storage.server_env).
                server = servers_of(database)
                assert server and all(env[JOBS_SWITCH] == "false" for _, env in server)
                assert not [line for line, _ in server if "mlflow.server.jobs" in line]
                break
            except OSError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "mlflow ui did not come up"
                time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(timeout=30)
    # Stopping `onecycle ui` stops the whole server (mlflow ui -> uvicorn -> workers), so the
    # port is free again.
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                pass
        except OSError:
            break
        assert time.monotonic() < deadline, "the MLflow server outlived `onecycle ui`"
        time.sleep(0.5)
