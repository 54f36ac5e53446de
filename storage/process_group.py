"""Stopping a server that runs in a process group of its own (``mlflow server``, ``mlflow ui``).

MLflow's server starts uvicorn, which starts workers and job runners: stopping only the direct
child left them running and bound to the port. So the server is started with
``start_new_session=True`` and stopped as a whole group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any


def stop_group(process: subprocess.Popen[Any], grace_s: float = 15.0) -> None:
    """SIGTERM ``process``'s group, SIGKILL it after ``grace_s``; then whatever is left of it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    # A server that exited on its own may leave workers in its group: stop them too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
