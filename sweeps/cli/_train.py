"""``onecycle train`` (one run with given params) and ``onecycle ui`` (the MLflow UI)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

import schedulers
from storage.process_group import stop_group
from storage.redact import redact_url
from storage.server_env import mlflow_server_env
from sweeps.cli._store_options import (
    open_from_options,
    spec_from_options,
    start_writer_early,
    store_options,
)
from sweeps.config._files import load_mapping
from sweeps.errors import UsageError
from sweeps.phases import phase

if TYPE_CHECKING:
    from storage import Store
    from sweeps.config import SweepConfig
    from sweeps.trials import MlflowTarget

_PATH = click.Path(path_type=Path, dir_okay=False)


def read_params(path: Path) -> dict[str, Any]:
    """OneCycle params from a DeepSpeed config, a scheduler block, or a plain params mapping."""
    data = load_mapping(path)
    block = data.get("scheduler", data) if "type" not in data else data
    if isinstance(block, dict) and "type" in block:
        try:
            kind, params = schedulers.normalize_block(block)
        except (ValueError, TypeError) as error:
            raise UsageError(f"{path}: {error}") from None
        if kind != "OneCycle":
            raise UsageError(f"{path}: scheduler type must be OneCycle, got {kind!r}")
        return params
    try:
        return schedulers.normalize_block({"type": "OneCycle", "params": block})[1]
    except (ValueError, TypeError) as error:
        raise UsageError(f"{path}: {error}") from None


#: The tracking handle of a tracked ``train``'s parent run.
PARENT = "parent"


@click.command(
    "train",
    short_help="Train SWEEP_FILE's workload once with the given params (`onecycle best` output).",
)
@click.argument("sweep_file", type=_PATH)
@click.option(
    "--params",
    "params_file",
    type=_PATH,
    required=True,
    help="OneCycle params: a DeepSpeed config, a scheduler block, or a params file.",
)
@click.option("--no-track", is_flag=True, help="Do not log the run to MLflow.")
@store_options
def train_command(sweep_file: Path, params_file: Path, no_track: bool, **options: Any) -> None:
    """Train SWEEP_FILE's workload once with the given params (e.g. `onecycle best` output)."""
    if not no_track:  # its MLflow import runs on another core while torch loads here
        start_writer_early(options)
    with phase("imports"):
        import optuna

        from sweeps.runner import (
            check_workload,
            load_config,
            resolve_device,
            run_params,
            settings_of,
            workload_factory,
        )
        from sweeps.trials import TrialObjective
    with phase("config"):
        config = load_config(sweep_file)
        params = read_params(params_file)
        try:
            schedulers.OneCycleSchedule(**params)
        except (ValueError, TypeError) as error:
            raise UsageError(f"{params_file}: {error}") from None
    with phase("workload check"):
        check_workload(config, str(sweep_file))
    device = resolve_device(config.workload.device)
    console = Console()
    study = optuna.create_study(direction=config.objective.direction)
    objective = TrialObjective(
        suggest=lambda trial: dict(params),
        get_runner=workload_factory(config, device),
        settings=settings_of(config),
        run_params=run_params(config, device),
    )
    with phase("store open"):
        store = None if no_track else open_from_options(options)
    try:
        if store is not None:
            with phase("tracking setup"):  # MLflow's work runs in the writer, not here
                objective.mlflow = _tracked(store, config, params_file)
        trial = study.ask()
        value = objective(trial)
        study.tell(trial, value)
        console.print(
            f"{config.metric}: [bold]{value:.4f}[/bold] after {trial.user_attrs['steps']} "
            f"updates ({trial.user_attrs['wall_time_s']:.1f} s)"
        )
        if objective.mlflow is not None and store is not None:
            with phase("tracking flush"):
                objective.mlflow.tracking.end_run(PARENT, "FINISHED")
                objective.mlflow.tracking.close().raise_errors()
            console.print(
                f"tracked as MLflow run {trial.user_attrs['mlflow_run_id']} "
                f"in experiment {config.name}"
            )
    finally:
        if objective.mlflow is not None:
            objective.mlflow.tracking.close()
        if store is not None:
            store.close()


def _tracked(store: Store, config: SweepConfig, params_file: Path) -> MlflowTarget:
    """The run's tracking: experiment, parent run and trial run, all made by the writer.

    The parent is adopted: the writer ends it FAILED if this process dies. Where the run ids
    can be chosen here (a database store), the writer makes them while this process trains;
    elsewhere (a tracking server) the process waits for MLflow's ids.
    """
    from storage.tracking import ProcessTracking
    from storage.trial_recording import planned_recorder, run_recorder
    from sweeps.tracking import ensure_experiment, parent_run
    from sweeps.trials import MlflowTarget

    uri = store.spec.mlflow_uri
    tracking = ProcessTracking.for_uri(uri)
    tracking.store_ready()
    named = (ensure_experiment, (config.name, store.spec.artifact_location))
    settings = {"params_file": str(params_file)}
    planned = planned_recorder(tracking, uri, named)
    experiment = "" if planned is not None else tracking.ask(ensure_experiment, *named[1])
    # The parent is created and adopted like the trial's run, so an interrupt while it is
    # made leaves it to the writer to end, never RUNNING.
    runs = planned or run_recorder(tracking, uri)
    new = {PARENT: parent_run(config.name, "train", settings)}
    parent = runs.open(experiment, new)[PARENT]
    return MlflowTarget(tracking, experiment, parent, config.name, runs)


@click.command("ui")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind (127.0.0.1 keeps it on this machine).",
)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@store_options
def ui_command(host: str, port: int, **options: Any) -> None:
    """Open the MLflow UI on the store's tracking data."""
    spec = spec_from_options(options)
    if spec.kind == "proxy":  # the proxy names its tracking server
        with open_from_options(options) as store:
            spec = store.spec
    if spec.mlflow_uri.startswith(("http://", "https://")):
        click.echo(f"this store tracks to an MLflow server: open {redact_url(spec.mlflow_uri)}")
        return
    open_from_options(options).close()  # create the store and its schema if needed
    executable = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
    command = [executable, "ui", "--host", host, "--port", str(port)]
    # The database URL and its password go in the environment: ``ps`` shows a command line.
    env = mlflow_server_env(
        os.environ,
        MLFLOW_BACKEND_STORE_URI=spec.mlflow_uri,
        MLFLOW_DEFAULT_ARTIFACT_ROOT=spec.artifact_location,
    )
    click.echo(f"MLflow UI for {spec.describe()} at http://{host}:{port} (Ctrl+C to stop)")
    raise SystemExit(serve_until_stopped(command, env))


def serve_until_stopped(command: list[str], env: dict[str, str] | None = None) -> int:
    """Run a server in a process group of its own, stopped as a whole with this process.

    Ctrl+C or SIGTERM to this process stops the group; the server's exit code is returned.
    ``mlflow ui`` starts uvicorn, which starts workers: stopping only the direct child left the
    server running and bound to its port.
    """
    process = subprocess.Popen(command, env=env, start_new_session=True)

    def stop(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            return process.wait()
        finally:
            stop_group(process)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
