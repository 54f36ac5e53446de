"""``onecycle submit --slurm`` and ``onecycle cancel``: a sweep's workers as SLURM jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from storage.spec import (
    ENV_ARTIFACTS,
    ENV_DB_PREFIX,
    ENV_MLFLOW,
    ENV_OPTUNA,
    ENV_STORE,
    StoreSpec,
)
from sweeps.cli._store_options import (
    open_existing_from_options,
    open_from_options,
    spec_from_options,
    store_options,
)
from sweeps.cli._sweep import parse_fused, refuse_unfusable
from sweeps.errors import UsageError

_PATH = click.Path(path_type=Path, dir_okay=False)
#: Where scripts, store files and job logs go unless ``--dir`` says otherwise.
DEFAULT_DIR = "onecycle-slurm"


@click.command("submit")
@click.argument("sweep_file", type=_PATH)
@click.option("--slurm", is_flag=True, help="Submit to SLURM with sbatch (required).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--gpus-per-worker",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="GPUs of each worker (sbatch --gpus-per-task; SLURM sets CUDA_VISIBLE_DEVICES).",
)
@click.option(
    "--cpus-per-worker",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="CPUs of each worker (sbatch --cpus-per-task; 0: the partition's default).",
)
@click.option("--partition", help="The SLURM partition (sbatch --partition).")
@click.option("--time", "time_limit", help="Each worker's time limit (sbatch --time).")
@click.option(
    "--sbatch-arg",
    "sbatch_args",
    multiple=True,
    metavar="ARG",
    help="Another sbatch option for every worker, e.g. --sbatch-arg=--mem=16G (repeatable).",
)
@click.option(
    "--fused",
    callback=lambda ctx, param, value: parse_fused(value),
    help="Each worker trains K trials at once as one stacked model, or 'auto'.",
)
@click.option(
    "--allow-sqlite",
    is_flag=True,
    help="Accept a SQLite store: only when every node shares its filesystem.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_DIR,
    show_default=True,
    help="Where the script, the store file and the job logs go: a filesystem every node shares.",
)
@store_options
def submit_command(
    sweep_file: Path,
    slurm: bool,
    workers: int,
    gpus_per_worker: int,
    cpus_per_worker: int,
    partition: str | None,
    time_limit: str | None,
    sbatch_args: tuple[str, ...],
    fused: int | str | None,
    allow_sqlite: bool,
    directory: Path,
    **options: Any,
) -> None:
    """Create or resume the sweep in SWEEP_FILE and submit its workers to SLURM as a job array."""
    from sweeps.runner import check_workload, create_or_resume, load_config, outcome_of
    from sweeps.slurm import JobRequest, loopback_hosts, refuse_local_store, submit

    if not slurm:
        raise UsageError("--slurm: the scheduler to submit to (SLURM is the one so far), got none")
    config = load_config(sweep_file)
    refuse_unfusable(config, sweep_file, fused)
    request = JobRequest(
        config.name,
        workers,
        gpus_per_worker,
        partition,
        time_limit,
        sbatch_args,
        None if fused is None else str(fused),
        cpus_per_worker,
    )
    request.check()
    spec = spec_from_options(options)
    refuse_local_store(spec, allow_sqlite)
    check_workload(config, str(sweep_file), fused)
    console = Console()
    for host in loopback_hosts(spec):
        Console(stderr=True).print(
            f"warning: the store is reached through {host}, which only this machine reaches: "
            "workers on other nodes will fail to connect (fine on a one-node cluster)"
        )
    with open_from_options(options) as store:
        record, created = create_or_resume(store, config)
        import optuna

        study = optuna.load_study(study_name=record.study_name, storage=store.optuna_storage)
        if outcome_of(study, config.search.n_trials).done:
            console.print(f"sweep {record.name} is finished: nothing to submit")
            return
        done = submit(store, record, study, request, directory, store_settings(spec))
    verb = "created" if created else "resuming"
    console.print(f"{verb} sweep [bold]{record.name}[/bold] in {spec.describe()}")
    console.print(f"submitted SLURM job {done.job}: {workers} workers (array 0-{workers - 1})")
    console.print(f"script {done.script}; logs in {done.logs}")
    console.print(
        f"follow: onecycle status {record.name} (or squeue -j {done.job}); "
        f"stop: onecycle cancel {record.name}"
    )


def store_settings(spec: StoreSpec) -> dict[str, str]:
    """The store file's settings: the store as this process resolved it, paths absolute."""
    settings = {
        ENV_STORE: str(spec.directory) if spec.directory else spec.setting,
        ENV_DB_PREFIX: spec.db_prefix,
    }
    if spec.optuna_given:
        settings[ENV_OPTUNA] = spec.optuna_given
    if spec.mlflow_given:
        settings[ENV_MLFLOW] = spec.mlflow_given
    if spec.artifact_location:
        settings[ENV_ARTIFACTS] = spec.artifact_location
    return settings


@click.command("cancel")
@click.argument("name")
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    default=180.0,
    show_default=True,
    help="Seconds to wait for the jobs to end.",
)
@store_options
def cancel_command(name: str, wait_s: float, **options: Any) -> None:
    """Cancel sweep NAME's SLURM jobs; its running trials end interrupted and are queued again."""
    from sweeps.slurm import cancel

    console = Console()
    with open_existing_from_options(options) as store:
        record = store.sweeps.get(name)
        with console.status(f"cancelling the SLURM jobs of sweep {name}") as shown:
            done = cancel(
                store,
                record,
                wait_s,
                lambda active: shown.update(f"waiting for jobs {', '.join(sorted(active))}"),
            )
    ended = (
        f"cancelled SLURM jobs {', '.join(done.jobs)}"
        if done.jobs
        else "no SLURM job was still queued or running"
    )
    console.print(
        f"{ended} of sweep {name}: {done.queued} trials queued again ({len(done.closed)} "
        "closed here); `onecycle submit` resumes it"
    )
