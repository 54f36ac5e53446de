"""``onecycle run`` and ``onecycle worker``: start, resume or join a sweep."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from storage import Store, SweepRecord
from storage.redact import redact_url
from sweeps.cli._store_options import (
    close_writer,
    names_new_directory_store,
    open_existing_from_options,
    open_from_options,
    route_to_writer,
    start_writer_early,
    store_env,
    store_options,
)
from sweeps.errors import SweepsError, UsageError
from sweeps.phases import phase

if TYPE_CHECKING:
    from sweeps.config import SweepConfig
    from sweeps.runner import SweepOutcome

_PATH = click.Path(path_type=Path, dir_okay=False)


@click.command("run")
@click.argument("sweep_file", type=_PATH)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Local worker processes sharing the sweep.",
)
@click.option(
    "--gpus",
    help="GPUs for the workers, e.g. 0,1 (round robin; may repeat); for a command workload, "
    "the GPUs its trials share, workload.gpus_per_trial each, as many trials at once as fit.",
)
@click.option(
    "--fused",
    "fused",
    callback=lambda ctx, param, value: parse_fused(value),
    help="Train K trials at once as one stacked model, or 'auto' [default: the file's "
    "execution.fused_trials].",
)
@store_options
def run_command(
    sweep_file: Path, workers: int, gpus: str | None, fused: int | str | None, **options: Any
) -> None:
    """Create the sweep in SWEEP_FILE in the store, or resume it, and run it to n_trials."""
    if names_new_directory_store(options):  # no sweep there is finished: its writer starts now
        start_writer_early(options)
    with phase("imports"):
        from sweeps.runner import load_config
    with phase("config"):
        config = load_config(sweep_file)  # refused here, before the store is touched
    refuse_unfusable(config, sweep_file, fused)
    gpu_list = _gpu_list(gpus)
    console = Console()
    if _say_if_finished(config, options, console):
        return
    in_process = (workers == 1 and not gpu_list) or _is_command_on_gpus(config, gpu_list)
    # The writer's MLflow import runs on another core while torch loads here; with workers,
    # it makes the sweep's experiment and parent run, then stops (each worker has its own).
    start_writer_early(options)
    with phase("imports"):
        import torch  # noqa: F401

        from sweeps.runner import check_workload, create_or_resume
    with phase("workload check"):
        check_workload(config, str(sweep_file), fused)
        _gpu_slots_here(config, workers, gpu_list)  # refused before the store
    with phase("store open"):
        opened = open_from_options(options)
    with opened as store:
        if workers > 1 and store.spec.kind == "directory":
            console.print(
                "note: several workers on a SQLite store share one database file; "
                "for more than a few, use a PostgreSQL store"
            )
        route_to_writer(store)  # MLflow's work runs in the writer: no MLflow import here
        with phase("sweep record"):
            record, created = create_or_resume(
                store,
                config,
                on_range_test=lambda c: console.print(
                    f"running the LR range test for the `auto` bounds ({c.range_test.steps} "
                    "updates at most)"
                ),
            )
        if not in_process:  # the workers' own writers do the rest
            close_writer(store)
        verb = "created" if created else "resuming"
        console.print(f"{verb} sweep [bold]{record.name}[/bold] in {store.spec.describe()}")
        if in_process:
            _run_and_report(store, record.name, config.metric, console, fused, gpu_list)
        else:
            _run_workers(store, record, config, options, fused, workers, gpu_list, console)


def _is_command_on_gpus(config: SweepConfig, gpus: list[str]) -> bool:
    """A command workload given ``--gpus`` runs its trials as slots of this one process."""
    return config.workload.command is not None and bool(gpus)


def _run_workers(
    store: Store,
    record: SweepRecord,
    config: SweepConfig,
    options: dict[str, Any],
    fused: int | str | None,
    workers: int,
    gpus: list[str],
    console: Console,
) -> None:
    """Run the sweep in ``workers`` local worker processes, then report it."""
    from sweeps.runner import run_local_workers

    failures = run_local_workers(
        store,
        record.name,
        record.study_name,
        config.search.n_trials,
        [] if fused is None else ["--fused", str(fused)],
        workers,
        gpus,
        console,
        store_env(options),
    )
    outcome = _outcome_of(store, record.name, config.search.n_trials)
    show_outcome(console, record.name, config.metric, outcome, store)
    for failure in failures:
        console.print(failure.line(), style="red", markup=False, highlight=False, soft_wrap=True)
    if failures:
        raise SweepsError(
            f"{len(failures)} of {workers} workers failed (see above); the sweep's finished "
            f"trials are kept, and `onecycle run` again resumes it"
        )


def _say_if_finished(config: SweepConfig, options: dict[str, Any], console: Console) -> bool:
    """A sweep already finished with this config is reported, not run: no torch, no MLflow.

    Only a store that is there is opened (a new one is created, as ever, once the workload
    has been checked).
    """
    from storage.errors import StoreError
    from sweeps.runner._lifecycle import finished_already

    try:
        opened = open_existing_from_options(options)
    except StoreError:  # not there yet (or failing: the run below says so, as it always has)
        return False
    with opened as store:
        record = finished_already(store, config)
        if record is None:
            return False
        outcome = _outcome_of(store, record.name, config.search.n_trials)
        if not outcome.done:
            return False
        console.print(
            f"sweep [bold]{record.name}[/bold] in {store.spec.describe()} is finished "
            f"({outcome.finished} of {config.search.n_trials} trials): nothing to run; raise "
            "search.n_trials to run more"
        )
        show_outcome(console, record.name, config.metric, outcome, store)
    return True


def refuse_unfusable(config: SweepConfig, sweep_file: Path, fused: int | str | None) -> None:
    """``--fused`` needs a task the project trains: not a function's loop, not a script."""
    from sweeps.config import FUSED_NEEDS_TASK

    if fused in (None, 1):
        return
    if config.workload.entrypoint is not None:
        raise UsageError(f"--fused: {FUSED_NEEDS_TASK}; {sweep_file}, got --fused {fused}")
    if config.workload.command is not None:
        raise UsageError(
            f"--fused: fused trials stack a task's model; {sweep_file} runs command "
            f"{config.workload.source!r}, got --fused {fused}"
        )


def _gpu_slots_here(config: SweepConfig, workers: int, gpus: list[str]) -> bool:
    """Whether a command's trials share ``--gpus`` as slots of this one worker (checked)."""
    if config.workload.command is None or not gpus:
        return False
    if workers > 1:
        raise UsageError(
            "--workers: a command workload runs one trial per GPU slot of --gpus "
            f"(workload.gpus_per_trial each) in one worker, got --workers {workers}"
        )
    from sweeps.runner import check_gpu_choice, gpu_slots
    from sweeps.trials import split_command

    slots = gpu_slots(gpus, config.workload.gpus_per_trial, cuda=True)
    check_gpu_choice(split_command(config.workload.command), slots)
    return True


def _gpu_list(gpus: str | None) -> list[str]:
    if not gpus:
        return []
    items = [item.strip() for item in gpus.split(",") if item.strip()]
    if not items or not all(item.isdigit() for item in items):
        raise UsageError(f"--gpus must be comma-separated GPU indices like 0,1, got {gpus!r}")
    return items


def _outcome_of(store: Store, name: str, n_trials: int) -> SweepOutcome:
    import optuna

    from sweeps.runner import outcome_of

    record = store.sweeps.get(name)
    study = optuna.load_study(study_name=record.study_name, storage=store.optuna_storage)
    return outcome_of(study, n_trials)


@click.command("worker")
@click.argument("name")
@click.option("--quiet", is_flag=True, help="No progress display (used by run --workers).")
@click.option("--gpus", help="For a command workload: the GPUs its trials share, e.g. 0,1,2,3.")
@click.option(
    "--fused",
    "fused",
    callback=lambda ctx, param, value: parse_fused(value),
    help="Train K trials at once as one stacked model, or 'auto'.",
)
@store_options
def worker_command(
    name: str, quiet: bool, gpus: str | None, fused: int | str | None, **options: Any
) -> None:
    """Join the running sweep NAME from another process or machine (reads it from the store)."""
    console = Console()
    gpu_list = _gpu_list(gpus)
    start_writer_early(options)  # MLflow's import, on another core
    with open_existing_from_options(options) as store:  # a worker joins; it never creates
        record = store.sweeps.get(name)
        metric = str(record.config.get("objective", {}).get("metric") or "objective")
        if quiet:
            from sweeps.runner import run_sweep

            run_sweep(store, record, fused=fused, gpus=gpu_list)
            return
        console.print(f"joining sweep [bold]{name}[/bold] in {store.spec.describe()}")
        _run_and_report(store, name, metric, console, fused, gpu_list)


def parse_fused(value: str | None) -> int | str | None:
    """``--fused``: a whole number of trials >= 1, or ``auto``."""
    if value is None or value == "auto":
        return value
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise click.BadParameter(f"must be a whole number >= 1 or 'auto', got {value!r}")
    return number


def _run_and_report(
    store: Store,
    name: str,
    metric: str,
    console: Console,
    fused: int | str | None = None,
    gpus: list[str] | None = None,
) -> None:
    from sweeps.cli._progress import LiveProgress

    record = store.sweeps.get(name)
    with LiveProgress(console, name, metric) as progress:
        from sweeps.runner import run_sweep

        outcome = run_sweep(store, record, progress, fused=fused, gpus=gpus or [])
    show_outcome(console, name, metric, outcome, store)


def show_outcome(
    console: Console, name: str, metric: str, outcome: SweepOutcome, store: Store
) -> None:
    """The end of a sweep: counts, best value and params, and where to look next."""
    console.print(
        f"sweep {name}: {outcome.finished} finished ({outcome.complete} complete, "
        f"{outcome.pruned} pruned), {outcome.failed} failed"
    )
    if outcome.best_value is None or outcome.best_params is None:
        console.print("no trial completed yet")
        return
    console.print(f"best {metric}: [bold]{outcome.best_value:.4f}[/bold]")
    table = Table(title="best OneCycle params", title_justify="left")
    table.add_column("param")
    table.add_column("value", justify="right")
    for key, value in sorted(outcome.best_params.items()):
        table.add_row(key, f"{value:.6g}" if isinstance(value, float) else str(value))
    console.print(table)
    store_flag = (
        f" --store {store.spec.describe()}" if store.spec.describe() != "./.onecycle" else ""
    )
    console.print(f"DeepSpeed config: onecycle best {name} --format deepspeed{store_flag}")
    tracking = store.spec.mlflow_uri
    if tracking.startswith(("http://", "https://")):  # a tracking server: its UI is there
        console.print(f"MLflow UI:        {redact_url(tracking)}")
    else:
        console.print(
            f"MLflow UI:        onecycle ui{store_flag}   (then open http://127.0.0.1:5000)"
        )
