"""The ``onecycle`` command line.

Every command raises :class:`~sweeps.errors.SweepsError` subclasses for anything it cannot do;
:func:`main` turns them (and click's own usage errors) into one line on stderr and an exit code:
2 for usage and config errors, 1 for runtime failures. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console

from sweeps.errors import SweepsError, UsageError

app = typer.Typer(
    name="onecycle",
    help="Tune DeepSpeed's 1-Cycle schedule: sweeps tracked in MLflow, stored in SQLite or "
    "PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Tune DeepSpeed's 1-Cycle schedule."""


@app.command()
def schedule(
    config: Annotated[
        Path, typer.Argument(help="DeepSpeed config (JSON/YAML) or its scheduler block.")
    ],
    steps: Annotated[
        int | None, typer.Option("--steps", min=1, help="Steps to trace (default: whole shape).")
    ] = None,
    every: Annotated[
        int | None, typer.Option("--every", min=1, help="Show every N-th step in the table.")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot here.")] = None,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Write every step's values as CSV here.")
    ] = None,
    base_lr: Annotated[
        float | None,
        typer.Option("--base-lr", help="Optimizer lr (default: the config's optimizer lr)."),
    ] = None,
) -> None:
    """Print (and plot) the lr and momentum a DeepSpeed scheduler block gives at each step."""
    from sweeps import schedule_view
    from sweeps.files import load_mapping

    data = load_mapping(config)
    try:
        trace = schedule_view.trace_schedule(data, steps=steps, base_lr=base_lr)
    except (ValueError, TypeError) as error:
        raise UsageError(f"{config}: {error}") from None
    console = Console()
    schedule_view.render_table(trace, console, every=every)
    for target in (plot, csv_path):
        if target is not None and not target.parent.exists():
            raise UsageError(f"{target}: directory {target.parent} does not exist")
    if csv_path is not None:
        schedule_view.write_csv(trace, csv_path)
        console.print(f"wrote {trace.steps} rows to {csv_path}")
    if plot is not None:
        schedule_view.plot_trace(trace, plot)
        console.print(f"wrote plot to {plot}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of raising ``SystemExit``."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        app(args=args, prog_name="onecycle", standalone_mode=False)
    except click.exceptions.Exit as stop:
        return int(stop.exit_code)
    except click.ClickException as error:
        if debug:
            raise
        error.show()
        return int(error.exit_code)
    except click.exceptions.Abort:
        print("onecycle: interrupted", file=sys.stderr)
        return 130
    except SweepsError as error:
        if debug:
            raise
        print(f"onecycle: error: {error}", file=sys.stderr)
        return error.exit_code
    return 0
