"""``onecycle submit --slurm``: the sweep's workers as one SLURM job array."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import optuna

from storage import Store, SweepRecord
from storage.redact import password_forms, password_of, scrub
from storage.store_file import write_store_file
from sweeps.errors import SweepsError, one_line
from sweeps.slurm._jobs import jobs_of, record_job
from sweeps.slurm._script import JobRequest, batch_script
from sweeps.slurm._store_reach import settings_with_password
from sweeps.slurm._tools import job_environment, release, sbatch, scancel

log = logging.getLogger(__name__)

#: The parent run's tag listing the sweep's SLURM jobs.
JOBS_TAG = "onecycle.slurm_jobs"


@dataclass(frozen=True)
class Submitted:
    """What was submitted and where to look."""

    job: str
    script: Path
    logs: Path


def submit(
    store: Store,
    record: SweepRecord,
    study: optuna.Study,
    request: JobRequest,
    directory: Path,
    settings: Mapping[str, str],
) -> Submitted:
    """Write the store file and the script under ``directory``, submit, and record the job.

    ``settings`` are the store's ``ONECYCLE_*`` variables for the store file. The job gets this
    process's environment without them (:func:`~sweeps.slurm._tools.job_environment`). It is
    submitted held and released once recorded with the sweep, so no job runs that ``status``
    and ``cancel`` cannot find.
    """
    request.check()
    home = (directory / record.name).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    # A file per submit: rewriting one would change the store of jobs already queued.
    settings = settings_with_password(settings, os.environ)
    store_file = write_store_file(home / f"store-{stamp}.env", settings)
    script_path = home / f"submit-{stamp}.sh"
    script = batch_script(request, sys.executable, store_file, logs)
    script_path.write_text(script)
    found = [password_of(value) or "" for value in settings.values()]
    found.append(os.environ.get("PGPASSWORD", ""))
    passwords = {form for raw in found if raw for form in password_forms(raw)}
    env = job_environment(passwords)
    _warn_dropped(env)
    job = sbatch(script_path, env, hold=True)
    try:
        record_job(study, job, request.workers, str(script_path))
    except BaseException as error:
        try:
            scancel([job])
        except SweepsError as cancelling:
            raise SweepsError(
                f"job {job} is submitted held but could not be recorded with the sweep "
                f"({scrub(one_line(str(error)))}) nor cancelled ({cancelling}): `scancel {job}`"
            ) from None
        raise
    try:
        release(job)
    except SweepsError as error:
        raise SweepsError(
            f"{error}; job {job} is recorded but held: `scontrol release {job}` starts it"
        ) from None
    _log_to_parent(store, record, job, script, study)
    return Submitted(job, script_path, logs)


def _warn_dropped(env: Mapping[str, str]) -> None:
    """Say which of the user's own variables the job will not get because they hold a password.

    A short password can be part of ``PATH`` or ``HOME``: a job without them fails oddly.
    """
    dropped = sorted(
        key for key in set(os.environ) - set(env) if not key.startswith(("ONECYCLE_", "PG"))
    )
    if dropped:
        log.warning(
            "the SLURM job does not get %s: each holds the store's password", ", ".join(dropped)
        )


def _log_to_parent(
    store: Store, record: SweepRecord, job: str, script: str, study: optuna.Study
) -> None:
    """The script as an artifact of the sweep's parent run, and the job ids as its tag."""
    parent = record.mlflow_parent_run_id
    if not parent:
        return
    try:
        store.mlflow.log_text(parent, script, f"slurm/submit-{job}.sh")
        store.mlflow.set_tag(parent, JOBS_TAG, ",".join(jobs_of(study)))
    except Exception as error:  # the job runs either way; the script is kept on disk
        log.warning(
            "job %s is submitted, but its script could not be logged to the parent run: %s",
            job,
            scrub(one_line(f"{type(error).__name__}: {error}")),
        )
