"""MLflow's telemetry is off in every process the project starts, unless ONECYCLE_TELEMETRY=1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage.telemetry import MLFLOW_SWITCH, TELEMETRY_ENV
from storage.tracking import ProcessTracking
from sweeps.runner import worker_env

ROOT = Path(__file__).resolve().parents[2]
#: What MLflow itself reads as "in CI or under test" (its telemetry is off there anyway).
CI_MARKERS = ("CI", "GITHUB_ACTIONS", "PYTEST_CURRENT_TEST", "MLFLOW_TESTING", "DO_NOT_TRACK")


def mlflow_says_disabled(setup: str, extra: dict[str, str] | None = None) -> bool:
    """MLflow's own verdict, in a fresh interpreter outside CI, after ``setup``."""
    env = {k: v for k, v in os.environ.items() if k not in (*CI_MARKERS, MLFLOW_SWITCH)}
    env.update({"PYTHONPATH": str(ROOT), **(extra or {})})
    code = f"{setup}\nfrom mlflow.telemetry.utils import is_telemetry_disabled\n"
    code += "print(is_telemetry_disabled())"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-1000:]
    return done.stdout.strip() == "True"


@pytest.mark.slow  # three fresh interpreters importing MLflow
def test_importing_storage_turns_mlflow_telemetry_off_unless_the_user_opts_in() -> None:
    assert not mlflow_says_disabled("import mlflow")  # MLflow's default here: on
    assert mlflow_says_disabled("import storage")
    assert not mlflow_says_disabled("import storage", {TELEMETRY_ENV: "1"})


def test_the_tracking_writer_and_local_workers_inherit_the_switch(tmp_path: Path) -> None:
    assert os.environ[MLFLOW_SWITCH] == "true"  # this process imported storage
    writer = ProcessTracking(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        environ = Path(f"/proc/{writer._process.pid}/environ")
        deadline = time.monotonic() + 30
        while not (raw := environ.read_bytes()):  # empty until the new process's exec is done
            assert time.monotonic() < deadline, "the writer process never started"
            time.sleep(0.05)
        assert f"{MLFLOW_SWITCH}=true".encode() in raw.split(b"\0")
    finally:
        writer.discard()
    assert worker_env(0, 2, [])[MLFLOW_SWITCH] == "true"
