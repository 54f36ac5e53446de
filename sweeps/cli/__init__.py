"""The ``onecycle`` command line.

Built on click directly (its exception types have been stable for years, and typer 0.29 moved
to a private copy of click whose errors no longer reach a caller). Commands raise
:class:`~sweeps.errors.SweepsError` subclasses for anything they cannot do; :func:`main` turns
those and click's own usage errors into one line on stderr and an exit code: 2 for usage and
config errors, 1 for runtime failures. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

import click
from rich.console import Console

from storage import StoreConfigError, StoreError, SweepNotFound
from sweeps.cli._store_options import store_options
from sweeps.errors import SweepsError, UsageError, one_line

_PATH = click.Path(path_type=Path, dir_okay=False)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 99},
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="onecycle-sweeps", prog_name="onecycle")
def app(debug: bool) -> None:
    """Tune DeepSpeed's 1-Cycle schedule: sweeps tracked in MLflow, stored in SQLite/PostgreSQL."""


@app.command()
@click.argument("config", type=_PATH)
@click.option("--steps", type=click.IntRange(min=1), help="Steps to trace [default: whole shape].")
@click.option("--every", type=click.IntRange(min=1), help="Show every N-th step in the table.")
@click.option("--plot", type=_PATH, help="Write a PNG plot of lr and momentum here.")
@click.option("--csv", "csv_path", type=_PATH, help="Write every step's values as CSV here.")
@click.option("--base-lr", type=float, help="Optimizer lr [default: the config's optimizer lr].")
def schedule(
    config: Path,
    steps: int | None,
    every: int | None,
    plot: Path | None,
    csv_path: Path | None,
    base_lr: float | None,
) -> None:
    """Print (and plot) the lr and momentum a DeepSpeed scheduler block gives at each step.

    CONFIG is a DeepSpeed config (JSON or YAML) with a ``scheduler`` block, or the block alone.
    """
    from sweeps.cli import _schedule_view as schedule_view
    from sweeps.config._files import load_mapping

    for target in (plot, csv_path):
        if target is not None and not target.parent.exists():
            raise UsageError(f"{target}: directory {target.parent} does not exist")
    data = load_mapping(config)
    try:
        trace = schedule_view.trace_schedule(data, steps=steps, base_lr=base_lr)
    except (ValueError, TypeError) as error:
        raise UsageError(f"{config}: {error}") from None
    console = Console()
    schedule_view.render_table(trace, console, every=every)
    if csv_path is not None:
        schedule_view.write_csv(trace, csv_path)
        console.print(f"wrote {trace.steps} rows to {csv_path}")
    if plot is not None:
        schedule_view.plot_trace(trace, plot)
        console.print(f"wrote plot to {plot}")


@app.group()
def store() -> None:
    """Inspect the store (where studies and runs live)."""


@store.command("info")
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def store_info_command(as_json: bool, **options: str | None) -> None:
    """Backends, versions, sweeps and sizes of the store (no secrets); creates nothing."""
    from sweeps.cli import _store_view as store_view
    from sweeps.cli._store_options import open_existing_from_options

    with open_existing_from_options(options) as opened:
        store_view.show_info(opened, Console(), as_json=as_json)


def _register_commands() -> None:
    from sweeps.cli._inspect import best_command, list_command, status_command, summary_command
    from sweeps.cli._range import range_test_command
    from sweeps.cli._study import study_group
    from sweeps.cli._sweep import run_command, worker_command
    from sweeps.cli._train import train_command, ui_command

    for command in (
        run_command,
        worker_command,
        status_command,
        list_command,
        best_command,
        summary_command,
        train_command,
        range_test_command,
        study_group,
        ui_command,
    ):
        app.add_command(command)


_register_commands()


def _quiet_libraries(debug: bool) -> None:
    """MLflow and Alembic announce schema creation at INFO; a CLI user does not need that."""
    level = logging.DEBUG if debug else logging.WARNING
    # Child loggers: importing mlflow resets the level of its root "mlflow" logger.
    for name in ("mlflow.store", "alembic"):
        logging.getLogger(name).setLevel(level)
    # Its "SQLAlchemy database error" is a traceback logged before the error is raised to us;
    # the CLI reports that error itself, on one line.
    logging.getLogger("mlflow.store.db.utils").setLevel(
        logging.DEBUG if debug else logging.CRITICAL
    )
    # Outcomes are shown by the CLI itself; Optuna's per-trial log lines would interleave.
    logging.getLogger("optuna").setLevel(logging.DEBUG if debug else logging.ERROR)


def _interrupt_on_sigterm() -> None:
    """SIGTERM (docker stop, a scheduler) ends the current trial cleanly, like Ctrl+C."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of raising ``SystemExit``."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    _quiet_libraries(debug)
    _interrupt_on_sigterm()
    try:
        app.main(args=args, prog_name="onecycle", standalone_mode=False)
    except click.exceptions.Exit as stop:
        return int(stop.exit_code)
    except click.ClickException as error:
        if debug:
            raise
        print(f"onecycle: error: {error.format_message()}", file=sys.stderr)
        return int(error.exit_code)
    except click.exceptions.Abort:
        print("onecycle: interrupted", file=sys.stderr)
        return 130
    except SweepsError as error:
        if debug:
            raise
        print(f"onecycle: error: {one_line(str(error))}", file=sys.stderr)
        return error.exit_code
    except StoreError as error:
        if debug:
            raise
        print(f"onecycle: error: {one_line(str(error))}", file=sys.stderr)
        return 2 if isinstance(error, (StoreConfigError, SweepNotFound)) else 1
    return 0
