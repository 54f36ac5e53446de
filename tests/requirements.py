"""Skip-or-fail helpers: optional systems skip with a reason locally, but CI must have them."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_module(name: str, why: str) -> ModuleType:
    """Import ``name``; skip when it is missing, unless running in CI, where that fails."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        message = f"{name} is not installed ({why}): {error}"
        if in_ci():
            pytest.fail(f"CI must run this test: {message}")
        pytest.skip(message)


POSTGRES_ENV = "SWEEPS_TEST_POSTGRES_URL"


def postgres_url() -> str:
    """The test server's URL; skip without it locally, fail without it in CI."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        message = f"{POSTGRES_ENV} is not set (e.g. postgresql://postgres@127.0.0.1:5432/)"
        if in_ci():
            pytest.fail(f"CI must run the PostgreSQL tests: {message}")
        pytest.skip(message)
    return url


OLDEST_PYTHON_ENV = "SWEEPS_OLDEST_PYTHON"


def oldest_python() -> str:
    """The interpreter of a venv with the oldest Optuna and MLflow allowed (`.ci/run` makes one)."""
    path = os.environ.get(OLDEST_PYTHON_ENV)
    if not path:
        message = (
            f"{OLDEST_PYTHON_ENV} is not set: the python of a venv with this project and the "
            "oldest optuna and mlflow pyproject.toml allows (.ci/oldest-venv makes one)"
        )
        if in_ci():
            pytest.fail(f"CI must run the old-store tests: {message}")
        pytest.skip(message)
    return path


def require_slurm() -> None:
    """A SLURM cluster that runs jobs here (`.ci/slurm-up` starts one); skip or fail without."""
    import shutil
    import subprocess

    message = ""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        message = "SLURM's commands are not installed (.ci/slurm-up installs and starts a cluster)"
    else:
        done = subprocess.run(
            ["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, check=False
        )
        states = done.stdout.split()
        if done.returncode != 0 or not {"idle", "mixed", "allocated"} & set(states):
            said = (done.stderr or done.stdout).strip()[:200] or "no node"
            message = f"no SLURM node is up (.ci/slurm-up starts one): {said}"
    if message:
        if in_ci():
            pytest.fail(f"CI must run the SLURM tests: {message}")
        pytest.skip(message)
