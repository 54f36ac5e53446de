"""A sweep's workers handed to SLURM: ``onecycle submit --slurm`` and ``onecycle cancel``.

:func:`submit` writes a job array of ``onecycle worker NAME`` processes and submits it; the
store reaches the jobs through a file only the user can read (:mod:`storage.store_file`), never
their command line or environment. :func:`cancel` ends a sweep's jobs and leaves no trial or
run of theirs RUNNING. The workers themselves are ordinary workers: the sweep's lock,
heartbeats and stale-trial recovery coordinate them, and a worker SLURM stops queues its
trial again (:mod:`sweeps.runner._requeue`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sweeps._lazy import lazy_names

if TYPE_CHECKING:
    from sweeps.slurm._cancel import Cancelled, cancel
    from sweeps.slurm._jobs import jobs_of
    from sweeps.slurm._script import JobRequest, batch_script
    from sweeps.slurm._store_reach import loopback_hosts, refuse_local_store
    from sweeps.slurm._submit import Submitted, submit

#: Loaded on first use: ``cancel`` needs MLflow, and ``status`` reads the jobs without it.
_HOMES = {
    "Cancelled": "sweeps.slurm._cancel",
    "JobRequest": "sweeps.slurm._script",
    "Submitted": "sweeps.slurm._submit",
    "batch_script": "sweeps.slurm._script",
    "cancel": "sweeps.slurm._cancel",
    "jobs_of": "sweeps.slurm._jobs",
    "loopback_hosts": "sweeps.slurm._store_reach",
    "refuse_local_store": "sweeps.slurm._store_reach",
    "submit": "sweeps.slurm._submit",
}

__getattr__ = lazy_names(__name__, _HOMES)

__all__ = [
    "Cancelled",
    "JobRequest",
    "Submitted",
    "batch_script",
    "cancel",
    "jobs_of",
    "loopback_hosts",
    "refuse_local_store",
    "submit",
]
