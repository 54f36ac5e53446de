"""The ``sbatch`` script of a sweep's workers: a job array, one ``onecycle worker`` per task."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from sweeps.errors import UsageError


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

    def check(self) -> None:
        """Refuse what sbatch would misread, naming the flag."""
        if self.workers < 1:
            raise UsageError(f"--workers: at least 1 worker, got {self.workers}")
        if self.gpus_per_worker < 0:
            raise UsageError(f"--gpus-per-worker: 0 or more, got {self.gpus_per_worker}")
        for arg in self.sbatch_args:
            if not arg.startswith("-") or "\n" in arg:
                raise UsageError(
                    f"--sbatch-arg: one sbatch option on one line, such as --mem=8G, got {arg!r}"
                )


def batch_script(request: JobRequest, python: str, store_file: Path, logs: Path) -> str:
    """The script: ``#SBATCH`` lines for the array, then ``exec`` of the worker.

    The worker is the job's own process (``exec``), so SLURM's SIGTERM reaches it and it
    closes its trial. Only the store file's path is written here, never the store.

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
        options.append(f"--time={request.time}")
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
            f"export ONECYCLE_STORE_FILE={shlex.quote(str(store_file))}",
            f"exec {shlex.join(worker)}",
            "",
        ]
    )
