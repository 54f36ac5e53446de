"""``onecycle schedule``: trace a DeepSpeed scheduler block without torch or a store."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from sweeps.errors import UsageError

_PATH = click.Path(path_type=Path, dir_okay=False)


@click.command("schedule")
@click.argument("config", type=_PATH)
@click.option("--steps", type=click.IntRange(min=1), help="Steps to trace [default: whole shape].")
@click.option("--every", type=click.IntRange(min=1), help="Show every N-th step in the table.")
@click.option("--plot", type=_PATH, help="Write a PNG plot of lr and momentum here.")
@click.option("--csv", "csv_path", type=_PATH, help="Write every step's values as CSV here.")
@click.option("--base-lr", type=float, help="Optimizer lr [default: the config's optimizer lr].")
def schedule_command(
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
