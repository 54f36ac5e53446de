"""``onecycle study batch-scaling FILE``: the 1-Cycle batch-scaling study, tracked and reported."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from sweeps.cli._store_options import open_from_options, store_options

_PATH = click.Path(path_type=Path, dir_okay=False)


@click.group("study")
def study_group() -> None:
    """Reproducible studies built from sweeps."""


@study_group.command("batch-scaling")
@click.argument("study_file", type=_PATH)
@click.option(
    "--report",
    type=_PATH,
    help="Where to write the Markdown report [default: <name>-report/batch_scaling.md].",
)
@store_options
def batch_scaling_command(study_file: Path, report: Path | None, **options: Any) -> None:
    """Baseline at batch b, then Fixed, LinearScale and 1Cycle at scale x b (see FILE)."""
    from sweeps.runner import check_workload
    from sweeps.studies.batch_scaling import load_study, run_study, table_rows, write_report

    config = load_study(study_file)
    check_workload(config.onecycle_sweep(), str(study_file))
    page = report or Path(f"{config.name}-report") / "batch_scaling.md"
    console = Console()
    with open_from_options(options) as store:
        result = run_study(store, config, say=lambda line: console.print(line, markup=False))
        command = "onecycle " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        written = write_report(result, page, command, store.mlflow)
    name = result.metric_label
    table = Table(title=f"{config.name}: target {name} {result.target:.4f}")
    for column in ("schedule", "batch", "lr", f"final {name}", "samples to target", "vs baseline"):
        table.add_column(column, justify="left" if column in ("schedule", "lr") else "right")
    for row in table_rows(result):
        relative = row["relative_to_baseline"]
        table.add_row(
            row["schedule"] + (" (diverged)" if row["diverged"] else ""),
            str(row["batch"]),
            row["lr"],
            "-" if row["final_value"] is None else f"{row['final_value']:.4f}",
            "not reached" if row["samples_to_target"] is None else f"{row['samples_to_target']:,}",
            "-" if relative is None else f"{relative:.2f}x",
        )
    console.print(table)
    console.print(f"report: {written[0]} (figures {written[1].name}, {written[2].name})")
    console.print(f"MLflow: experiment {config.name}, study run {result.parent_run_id}")
