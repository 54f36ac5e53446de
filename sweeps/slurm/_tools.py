"""SLURM's own commands (``sbatch``, ``squeue``, ``scancel``), run with what the job may see.

Each failure is one line naming the command and what SLURM said. The environment handed to
``sbatch`` (which SLURM keeps with the job and gives its tasks) has the store's settings and
anything holding its password taken out: the job reads them from the store file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from storage.store_file import ENV_STORE_FILE, KEYS
from sweeps.errors import SweepsError, one_line

#: Variables never passed to a job: the store's settings and libpq's password.
_SECRET_VARIABLES = (*KEYS, ENV_STORE_FILE, "PGPASSWORD")
#: Variables that would send the job to another cluster, whose jobs ``status`` and ``cancel``
#: cannot follow (``--clusters`` is refused for the same reason).
_OTHER_CLUSTER = ("SBATCH_CLUSTERS", "SLURM_CLUSTERS")
#: Seconds a SLURM command may take before the controller counts as unreachable.
TOOL_TIMEOUT_S = 60.0


def job_environment(
    passwords: Iterable[str], env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``env`` without the store's settings and without any value that holds a password."""
    source = os.environ if env is None else env
    secrets = [password for password in passwords if password]
    return {
        key: value
        for key, value in source.items()
        if key not in (*_SECRET_VARIABLES, *_OTHER_CLUSTER)
        and not any(secret in value for secret in secrets)
    }


def _run(argv: list[str], env: Mapping[str, str] | None = None) -> str:
    tool = shutil.which(argv[0])
    if tool is None:
        raise SweepsError(
            f"{argv[0]}: not found on PATH; run onecycle where SLURM's commands are (a login node)"
        )
    try:
        done = subprocess.run(
            [tool, *argv[1:]],
            capture_output=True,
            text=True,
            env=None if env is None else dict(env),
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SweepsError(
            f"{argv[0]}: no answer from SLURM within {TOOL_TIMEOUT_S:.0f} s"
        ) from None
    if done.returncode != 0:
        said = one_line(done.stderr.strip() or done.stdout.strip() or "no message", 300)
        raise SweepsError(f"{argv[0]} failed (exit code {done.returncode}): {said}")
    return done.stdout


def sbatch(script: Path, env: Mapping[str, str], hold: bool = False) -> str:
    """Submit ``script`` (held until :func:`release` with ``hold``); the job id."""
    out = _run(["sbatch", "--parsable", *(["--hold"] if hold else []), str(script)], env).strip()
    job = out.split(";", 1)[0]
    if not job.isdigit():
        raise SweepsError(f"sbatch: expected a job id, got {one_line(out, 100)!r}")
    return job


def active_jobs(jobs: Iterable[str]) -> set[str]:
    """Which of ``jobs`` (ids, without array index) still have tasks pending or running."""
    wanted = set(jobs)
    if not wanted:
        return set()
    # Every user's jobs: a teammate cancelling a shared sweep must see the jobs it names (and
    # scancel then refuses them loudly), not find none and close trials still running.
    listed = _run(["squeue", "--noheader", "--format=%F"]).split()
    return wanted & set(listed)


def release(job: str) -> None:
    """Let a job submitted with ``hold`` start."""
    _run(["scontrol", "release", job])


def scancel(jobs: Iterable[str]) -> None:
    """Cancel ``jobs`` (every array task): SIGTERM, then SIGKILL after the cluster's KillWait."""
    ids = sorted(set(jobs))
    if ids:
        _run(["scancel", *ids])
