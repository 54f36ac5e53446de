"""The SLURM jobs of a sweep, kept with its study so any machine can find and cancel them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import optuna

#: The study's user attribute: one entry per ``submit`` (job id, workers, script, when).
JOBS_ATTR = "slurm_jobs"


def record_job(study: optuna.Study, job: str, workers: int, script: str) -> None:
    """Add a submitted job to the sweep's list."""
    entries: list[dict[str, Any]] = list(study.user_attrs.get(JOBS_ATTR, []))
    submitted = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entries.append({"job": job, "workers": workers, "script": script, "submitted": submitted})
    study.set_user_attr(JOBS_ATTR, entries)


def jobs_of(study: optuna.Study) -> list[str]:
    """The ids of every job submitted for the sweep, oldest first."""
    return [str(entry["job"]) for entry in study.user_attrs.get(JOBS_ATTR, [])]
