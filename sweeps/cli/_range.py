"""``onecycle range-test``: suggest ``cycle_min_lr`` / ``cycle_max_lr`` for a workload.

Any workload whose runner can drive the test: a built-in or a user's task in the project's
loop, or a user's entrypoint function through ``ctx.scheduler`` and ``ctx.log_loss``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar
from rich.table import Table

from storage import Store
from sweeps.cli._store_options import (
    close_writer,
    open_from_options,
    route_to_writer,
    start_writer_early,
    store_options,
)
from sweeps.errors import UsageError

_PATH = click.Path(path_type=Path, dir_okay=False)


@click.command("range-test")
@click.argument("sweep_file", type=_PATH)
@click.option("--min-lr", type=float, help="First lr [default: range_test.min_lr or 1e-5].")
@click.option("--max-lr", type=float, help="Last lr [default: range_test.max_lr or 10].")
@click.option(
    "--steps", type=click.IntRange(min=10), help="Updates from min to max [default: 300]."
)
@click.option(
    "--mode",
    type=click.Choice(["exponential", "linear"]),
    help="lr growth: exponential (same steps per decade) or linear (DeepSpeed's LRRangeTest).",
)
@click.option(
    "--staircase/--no-staircase",
    default=None,
    help="Hold each lr for steps/20 updates (DeepSpeed's staircase).",
)
@click.option(
    "--momentum",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    help="Momentum held during the test [default: the sweep's cycle_min_mom, else 0.8].",
)
@click.option("--plot", type=_PATH, help="Also write the plot (PNG) here.")
@click.option("--json", "as_json", is_flag=True, help="Print the suggestion as JSON.")
@click.option("--no-track", is_flag=True, help="Do not log the run to MLflow.")
@store_options
def range_test_command(
    sweep_file: Path,
    plot: Path | None,
    as_json: bool,
    no_track: bool,
    **options: Any,
) -> None:
    """Run an LR range test on SWEEP_FILE's workload and suggest cycle_min_lr / cycle_max_lr.

    The lr grows every update from --min-lr to --max-lr; the test stops once the loss has
    clearly diverged. The suggestion rule is in docs/range_test.md.
    """
    from sweeps.range_test import plot_range_test, record, run_for_config, settings_for
    from sweeps.runner import resolve_device
    from sweeps.tracking import ensure_experiment

    flags = {k: options.pop(k) for k in ("min_lr", "max_lr", "steps", "mode", "staircase")}
    flags["momentum"] = options.pop("momentum")
    if plot is not None and not plot.parent.exists():
        raise UsageError(f"--plot: directory {plot.parent} does not exist, got {plot}")
    from sweeps.runner import check_workload, load_config

    config = load_config(sweep_file)
    if config.workload.command is not None:
        from sweeps.trials import NO_RANGE_TEST

        raise UsageError(
            f"{sweep_file}: workload.command: {NO_RANGE_TEST}, got {config.workload.source!r}"
        )
    if not no_track:  # its MLflow import on another core while torch loads here
        start_writer_early(options)
    check_workload(config, str(sweep_file))
    try:
        settings = settings_for(config, **flags)
    except ValueError as error:
        raise UsageError(f"range test: {error}") from None
    store = None if no_track else route_to_writer(open_from_options(options))
    console = Console(stderr=as_json)
    device = resolve_device(config.workload.device)
    try:
        bar = RichBar(
            TextColumn("range test"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("lr {task.fields[lr]}  loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        with bar:
            task = bar.add_task("", total=settings.steps, lr="-", loss="-")

            def show(step: int, lr: float, loss: float) -> None:
                bar.update(task, completed=step + 1, lr=f"{lr:.3g}", loss=f"{loss:.4g}")

            outcome = run_for_config(config, device, settings, on_step=show)
        if store is not None:
            location = store.spec.artifact_location
            experiment = store.mlflow_call(ensure_experiment, config.name, location)
            record(store.mlflow_call, experiment, config, outcome, device)
        if plot is not None:
            plot_range_test(outcome.trace, outcome.suggestion, plot)
    except ValueError as error:
        raise UsageError(f"range test: {error}") from None
    finally:
        if store is not None:
            _close(store)
    if as_json:
        payload = {**outcome.suggestion.to_dict(), "run_id": outcome.run_id}
        payload["stopped_early"] = outcome.trace.stopped_early
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    _show(console, outcome, plot)


def _close(store: Store) -> None:
    """Wait for the writer's work (a failure of it is raised), then release the store."""
    try:
        close_writer(store)
    finally:
        store.close()


def _show(console: Console, outcome: Any, plot: Path | None) -> None:
    suggestion = outcome.suggestion
    trace = outcome.trace
    ended = "stopped at divergence" if trace.stopped_early else "ran every step"
    console.print(
        f"{len(trace.losses)} updates in {trace.wall_time_s:.1f} s ({ended}), "
        f"lr {trace.lrs[0]:.3g} to {trace.lrs[-1]:.3g}"
    )
    for line in suggestion.reasons:
        console.print(f"  - {line}", markup=False, highlight=False)
    table = Table(show_header=True, header_style="bold")
    table.add_column("parameter")
    table.add_column("suggested", justify="right")
    table.add_row("cycle_min_lr", f"{suggestion.cycle_min_lr:.4g}")
    table.add_row("cycle_max_lr", f"{suggestion.cycle_max_lr:.4g}")
    console.print(table)
    if outcome.run_id:
        console.print(f"tracked as MLflow run {outcome.run_id} (plot: range_test.png)")
    if plot is not None:
        console.print(f"wrote plot to {plot}")
