"""The ``sbatch`` script of a sweep's workers: a job array, one ``onecycle worker`` per task."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from storage.store_file import ENV_STORE_FILE, KEYS
from sweeps.errors import UsageError
from sweeps.runner._worker_tag import SUBMITTED

#: Seconds before ``--time`` runs out that SLURM warns the worker (SIGTERM), so it closes and
#: queues its trial again before the SIGKILL that follows the limit.
TIME_WARNING_S = 120
#: sbatch options ``submit`` cannot follow: ``status`` and ``cancel`` ask this cluster only.
_UNFOLLOWABLE = ("--clusters", "--cluster", "-M")


@dataclass(frozen=True)
class JobRequest:
    """What ``onecycle submit`` was asked for."""

    sweep: str
    workers: int
    gpus_per_worker: int = 0
    partition: str | None = None
    time: str | None = None
    sbatch_args: tuple[str, ...] = field(default_factory=tuple)
    fused: str | None = None
    cpus_per_worker: int = 0

    def check(self) -> None:
        """Refuse what sbatch would misread, naming the flag."""
        if self.workers < 1:
            raise UsageError(f"--workers: at least 1 worker, got {self.workers}")
        if self.gpus_per_worker < 0:
            raise UsageError(f"--gpus-per-worker: 0 or more, got {self.gpus_per_worker}")
        if self.cpus_per_worker < 0:
            raise UsageError(f"--cpus-per-worker: 0 or more, got {self.cpus_per_worker}")
        for flag, value in (("--partition", self.partition), ("--time", self.time)):
            if value is not None and (not value.strip() or any(c.isspace() for c in value)):
                raise UsageError(f"{flag}: one word without spaces or newlines, got {value!r}")
        for arg in self.sbatch_args:
            if not arg.startswith("-") or "\n" in arg:
                raise UsageError(
                    f"--sbatch-arg: one sbatch option on one line, such as --mem=8G, got {arg!r}"
                )
            if arg.split("=", 1)[0] in _UNFOLLOWABLE or arg.startswith("-M"):
                raise UsageError(
                    "--sbatch-arg: another cluster's jobs cannot be followed or cancelled from "
                    f"here; run onecycle submit on that cluster's login node, got {arg!r}"
                )


def batch_script(request: JobRequest, python: str, store_file: Path, logs: Path) -> str:
    """The script: ``#SBATCH`` lines for the array, then ``exec`` of the worker.

    The worker is the job's own process (``exec``), so SLURM's SIGTERM reaches it and it
    closes its trial. Only the store file's path is written here, never the store; store
    variables the job inherited anyway are unset, so the file is what it uses.

    Example:
        >>> text = batch_script(JobRequest("s1", 2), "/venv/bin/python", Path("/p/st"), Path("/l"))
        >>> [line for line in text.splitlines() if "array" in line or "exec" in line]
        ['#SBATCH --array=0-1', 'exec /venv/bin/python -m sweeps worker s1 --quiet']
    """
    request.check()
    options = [
        f"--job-name=onecycle-{request.sweep}",
        f"--array=0-{request.workers - 1}",
        "--ntasks=1",
        f"--output={logs / f'{request.sweep}-%A_%a.log'}",
    ]
    if request.partition:
        options.append(f"--partition={request.partition}")
    if request.time:
        options += [f"--time={request.time}", f"--signal=B:TERM@{TIME_WARNING_S}"]
    if request.cpus_per_worker:
        options.append(f"--cpus-per-task={request.cpus_per_worker}")
    if request.gpus_per_worker:
        options.append(f"--gpus-per-task={request.gpus_per_worker}")
    options += request.sbatch_args
    worker = [python, "-m", "sweeps", "worker", request.sweep, "--quiet"]
    if request.fused:
        worker += ["--fused", request.fused]
    return "\n".join(
        [
            "#!/bin/bash",
            f"# {request.workers} workers of sweep {request.sweep}, written by `onecycle submit`.",
            *(f"#SBATCH {option}" for option in options),
            "",
            "# The store's settings, in a file only its owner can read (mode 0600).",
            f"unset {' '.join(KEYS)}",
            f"export {ENV_STORE_FILE}={shlex.quote(str(store_file))}",
            "# A worker onecycle submitted: SLURM's SIGTERM queues its trial again.",
            f"export {SUBMITTED}=1",
            f"exec {shlex.join(worker)}",
            "",
        ]
    )
