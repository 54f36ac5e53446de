"""The ``onecycle`` command line.

Built on click directly (its exception types have been stable for years, and typer 0.29 moved
to a private copy of click whose errors no longer reach a caller). Commands raise
:class:`~sweeps.errors.SweepsError` subclasses for anything they cannot do; :func:`main` turns
those and click's own usage errors into one line on stderr and an exit code: 2 for usage and
config errors, 1 for runtime failures. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import click

from storage.errors import StoreConfigError, StoreError, SweepNotFound
from sweeps import phases
from sweeps.cli._lazy_group import Lazy, LazyGroup
from sweeps.errors import SweepsError, one_line

#: Every command, where it lives and its ``--help`` line (the command's own: a test checks).
COMMANDS: dict[str, Lazy] = {
    "cancel": Lazy(
        "sweeps.cli._submit",
        "cancel_command",
        "Cancel sweep NAME's SLURM jobs; its running trials end interrupted and are queued again.",
    ),
    "best": Lazy(
        "sweeps.cli._inspect",
        "best_command",
        "The best trial's OneCycle params of sweep NAME, e.g. as a DeepSpeed scheduler block.",
    ),
    "init": Lazy(
        "sweeps.cli._init",
        "init_command",
        "Write a sweep file (OUT, default NAME.yaml) with the recommended 1-Cycle search.",
    ),
    "list": Lazy("sweeps.cli._inspect", "list_command", "The sweeps in the store."),
    "range-test": Lazy(
        "sweeps.cli._range",
        "range_test_command",
        "Run an LR range test on SWEEP_FILE's workload and suggest cycle_min_lr / cycle_max_lr.",
    ),
    "run": Lazy(
        "sweeps.cli._sweep",
        "run_command",
        "Create the sweep in SWEEP_FILE in the store, or resume it, and run it to n_trials.",
    ),
    "schedule": Lazy(
        "sweeps.cli._schedule",
        "schedule_command",
        "Print (and plot) the lr and momentum a DeepSpeed scheduler block gives at each step.",
    ),
    "serve": Lazy(
        "sweeps.cli._serve",
        "serve_command",
        "Serve the store to many workers: they use --store onecycle://HOST:PORT.",
    ),
    "status": Lazy(
        "sweeps.cli._inspect",
        "status_command",
        "Trials of sweep NAME (state, value, duration, worker); every sweep when NAME is omitted.",
    ),
    "store": Lazy(
        "sweeps.cli._store_view",
        "store_group",
        "Inspect or upgrade the store (where studies and runs live).",
    ),
    "study": Lazy("sweeps.cli._study", "study_group", "Reproducible studies built from sweeps."),
    "submit": Lazy(
        "sweeps.cli._submit",
        "submit_command",
        "Create or resume the sweep in SWEEP_FILE and submit its workers to SLURM as a job array.",
    ),
    "summary": Lazy(
        "sweeps.cli._inspect",
        "summary_command",
        "Write sweep NAME's summary to its MLflow parent run now (history, importances, best).",
    ),
    "train": Lazy(
        "sweeps.cli._train",
        "train_command",
        "Train SWEEP_FILE's workload once with the given params (`onecycle best` output).",
    ),
    "ui": Lazy(
        "sweeps.cli._train", "ui_command", "Open the MLflow UI on the store's tracking data."
    ),
    "worker": Lazy(
        "sweeps.cli._sweep",
        "worker_command",
        "Join the running sweep NAME from another process or machine (reads it from the store).",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 99},
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.option(
    "--profile",
    is_flag=True,
    help="Print where the command's wall time went, by phase, on stderr [env ONECYCLE_PROFILE=1].",
)
@click.version_option(package_name="onecycle-sweeps", prog_name="onecycle")
def app(debug: bool, profile: bool) -> None:
    """Tune DeepSpeed's 1-Cycle schedule: sweeps tracked in MLflow, stored in SQLite/PostgreSQL."""


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
    _floor_logger("optuna", logging.DEBUG if debug else logging.ERROR)


class _FloorLogger(logging.Logger):
    """A logger whose level is never set below its floor.

    Optuna sets its own logger to INFO when it is first imported, which commands now do after
    the CLI has set the level (see ``sweeps.cli._lazy_group``).
    """

    floor = logging.NOTSET

    def setLevel(self, level: int | str) -> None:
        """Set the level, but never below :attr:`floor`."""
        number = logging.getLevelName(level) if isinstance(level, str) else level
        super().setLevel(max(int(number), self.floor))


def _floor_logger(name: str, floor: int) -> None:
    """Logger ``name`` at ``floor``, kept there (a logger made before this is only set)."""
    previous = logging.getLoggerClass()
    logging.setLoggerClass(_FloorLogger)
    try:
        logger = logging.getLogger(name)
    finally:
        logging.setLoggerClass(previous)
    if isinstance(logger, _FloorLogger):
        logger.floor = floor
    logger.setLevel(floor)


def _interrupt_on_sigterm() -> None:
    """SIGTERM (docker stop, a scheduler) ends the current trial cleanly, like Ctrl+C.

    Neither lands half-way through a message to the tracking writer (:mod:`storage.interrupts`).
    """
    from storage.interrupts import install

    install()


def entry() -> NoReturn:
    """The ``onecycle`` command: :func:`main`, then an exit without the modules' teardown."""
    from storage.gc_freeze import pause_for_start_up
    from sweeps.cli import _leaving

    pause_for_start_up()  # its imports are not swept again and again (storage/gc_freeze.py)
    _leaving.skip_teardown()
    code = main()
    _leaving.set_code(code)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of raising ``SystemExit``."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    profile = phases.wanted(args)
    args = [arg for arg in args if arg != "--profile"]  # taken before or after the command
    _quiet_libraries(debug)
    _interrupt_on_sigterm()
    try:
        return _run(args, debug)
    finally:
        tracking = sys.modules.get("storage.tracking")  # only then can a writer have started
        if tracking is not None:
            tracking.discard_waiting()  # the command's early writer, if it never took it
        if profile:
            phases.CLOCK.print()


def _run(args: list[str], debug: bool) -> int:
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
