"""A real MLflow tracking server on 127.0.0.1 for tests that need the http route."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from storage.server_env import mlflow_server_env
from tests.fixtures import free_port


@contextmanager
def mlflow_server(root: Path, startup_timeout_s: float = 60.0) -> Iterator[str]:
    """Start ``mlflow server`` on a free loopback port; yield its URI; stop it after."""
    port = free_port()
    executable = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
    log = (root / "mlflow-server.log").open("w")
    process = subprocess.Popen(
        [
            executable,
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'server-mlflow.db'}",
            "--artifacts-destination",
            str(root / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers (uvicorn) go with it
        env=mlflow_server_env(os.environ),  # no job runner, as the project's own servers
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            try:
                with urllib.request.urlopen(uri + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = (root / "mlflow-server.log").read_text()[-2000:]
                raise RuntimeError(f"mlflow server did not start: {output}")
            time.sleep(0.3)
        yield uri
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        with suppress(ProcessLookupError):  # anything of the group still there after its leader
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
