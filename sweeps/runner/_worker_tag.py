"""The worker tag each trial carries: which process ran it, and which SLURM job that was.

``host:pid`` alone on a workstation; a worker started by SLURM (``onecycle submit --slurm``)
adds its job and array index, ``host:pid slurm:JOB_INDEX``, so ``onecycle status`` can say
which job runs a trial and ``onecycle cancel`` which trials its jobs left.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping

_SLURM = re.compile(r"\bslurm:(?P<job>\d+)(?:_(?P<index>\d+))?$")
#: Exported by the script ``onecycle submit --slurm`` writes (or a hand-written one): this
#: worker's SIGTERM comes from the scheduler, so its interrupted trial is queued again.
SUBMITTED = "ONECYCLE_SLURM_WORKER"


def worker_tag(env: Mapping[str, str] | None = None) -> str:
    """This process's tag.

    Example:
        >>> worker_tag({"SLURM_ARRAY_JOB_ID": "42", "SLURM_ARRAY_TASK_ID": "1"}).split(" ")[1]
        'slurm:42_1'
    """
    environ = os.environ if env is None else env
    tag = f"{socket.gethostname()}:{os.getpid()}"
    job = slurm_job_here(environ)
    return f"{tag} slurm:{job}" if job else tag


def slurm_job_here(env: Mapping[str, str]) -> str | None:
    """``JOB_INDEX`` of an array task, ``JOB`` of a plain job; None outside SLURM."""
    array_job, index = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if array_job and index:
        return f"{array_job}_{index}"
    return env.get("SLURM_JOB_ID") or None


def requeues_when_stopped(tag: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether this worker's interrupted trials are queued again: a submitted SLURM worker's.

    Ctrl+C in ``srun --pty`` or ``salloc`` is its user stopping it, as on a workstation.

    Example:
        >>> requeues_when_stopped("n7:42 slurm:42_1", {SUBMITTED: "1"})
        True
        >>> requeues_when_stopped("n7:42 slurm:42", {})
        False
    """
    environ = os.environ if env is None else env
    return environ.get(SUBMITTED) == "1" and slurm_job_of(tag) is not None


def slurm_job_of(tag: str) -> str | None:
    """The SLURM job id (without the array index) a worker tag names, if any.

    Example:
        >>> slurm_job_of("node7:4242 slurm:42_1"), slurm_job_of("laptop:99")
        ('42', None)
    """
    found = _SLURM.search(tag)
    return found.group("job") if found else None


def slurm_task_of(tag: str) -> str | None:
    """``JOB_INDEX`` (or ``JOB``) of the SLURM task a worker tag names, if any.

    Example:
        >>> slurm_task_of("node7:4242 slurm:42_1")
        '42_1'
    """
    found = _SLURM.search(tag)
    return found.group(0).removeprefix("slurm:") if found else None


def pid_of(tag: str) -> str:
    """The process id in a worker tag.

    Example:
        >>> pid_of("node7:4242 slurm:42_1")
        '4242'
    """
    return tag.split(" ", 1)[0].rsplit(":", 1)[-1]
