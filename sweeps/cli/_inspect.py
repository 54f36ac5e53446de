"""``onecycle status``, ``list`` and ``best``: read a sweep back from the store."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import optuna
import yaml
from rich.console import Console
from rich.table import Table

import schedulers
from storage import Store
from storage.trial_queries import count_by_state
from sweeps.cli._store_options import open_existing_from_options, store_options
from sweeps.errors import UsageError
from sweeps.runner import best_block
from sweeps.runner._worker_tag import slurm_task_of
from sweeps.slurm import jobs_of


def _study(store: Store, name: str) -> optuna.Study:
    record = store.sweeps.get(name)
    return optuna.load_study(study_name=record.study_name, storage=store.optuna_storage)


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One JSON-ready row per trial."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                "duration_s": _duration(trial.datetime_start, trial.datetime_complete),
                "worker": trial.user_attrs.get("worker"),
                "slurm_task": slurm_task_of(str(trial.user_attrs.get("worker") or "")),
                "mlflow_run_id": trial.user_attrs.get("mlflow_run_id"),
                "failure_reason": trial.user_attrs.get("failure_reason"),
                "params": trial.user_attrs.get("deepspeed_params", {}),
            }
        )
    return rows


@click.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@store_options
def status_command(name: str | None, as_json: bool, **options: Any) -> None:
    """Trials of sweep NAME (state, value, duration, worker); every sweep when NAME is omitted."""
    console = Console()
    with open_existing_from_options(options) as store:
        names = [name] if name else [r.name for r in store.sweeps.list()]
        report = []
        for sweep in names:
            record = store.sweeps.get(sweep)
            study = _study(store, sweep)
            report.append(
                {
                    "name": sweep,
                    "status": record.status,
                    "n_trials": record.config["search"]["n_trials"],
                    "counts": count_by_state(study),
                    "best_value": _best_value(study),
                    "slurm_jobs": jobs_of(study),
                    "trials": trial_rows(study),
                }
            )
    if as_json:
        console.print_json(json.dumps(report, default=str))
        return
    if not report:
        console.print("no sweeps in this store yet")
    for entry in report:
        found = entry["counts"]
        console.print(
            f"[bold]{entry['name']}[/bold] ({entry['status']}): {found['complete']} complete, "
            f"{found['pruned']} pruned, {found['fail']} failed, {found['running']} running "
            f"of {entry['n_trials']}; best {entry['best_value']}"
        )
        if entry["slurm_jobs"]:
            console.print(f"SLURM jobs: {', '.join(entry['slurm_jobs'])} (worker slurm:JOB_INDEX)")
        table = Table(show_edge=False)
        for column in ("#", "state", "value", "duration", "worker", "note"):
            table.add_column(column)
        for row in entry["trials"]:
            value = "-" if row["value"] is None else f"{row['value']:.4f}"
            took = "-" if row["duration_s"] is None else f"{row['duration_s']:.1f} s"
            table.add_row(
                str(row["number"]),
                row["state"],
                value,
                took,
                row["worker"] or "-",
                (row["failure_reason"] or "")[:60],
            )
        console.print(table)


def _best_value(study: optuna.Study) -> float | None:
    return study.best_value if count_by_state(study)["complete"] else None


@click.command("list")
@store_options
def list_command(**options: Any) -> None:
    """The sweeps in the store."""
    console = Console()
    with open_existing_from_options(options) as store:
        table = Table(title=f"sweeps in {store.spec.describe()}", title_justify="left")
        for column in ("name", "status", "finished / n_trials", "failed", "best", "created"):
            table.add_column(column)
        for record in store.sweeps.list():
            study = _study(store, record.name)
            found = count_by_state(study)
            best = _best_value(study)
            table.add_row(
                record.name,
                record.status,
                f"{found['complete'] + found['pruned']} / {record.config['search']['n_trials']}",
                str(found["fail"]),
                "-" if best is None else f"{best:.4f}",
                record.created_at.strftime("%Y-%m-%d %H:%M") if record.created_at else "-",
            )
        console.print(table)


@click.command("summary")
@click.argument("name")
@store_options
def summary_command(name: str, **options: Any) -> None:
    """Write sweep NAME's summary to its MLflow parent run now (history, importances, best)."""
    from sweeps.tracking import log_sweep_summary

    with open_existing_from_options(options) as store:
        record = store.sweeps.get(name)
        if not record.mlflow_parent_run_id:
            raise UsageError(f"sweep {name!r} has no MLflow parent run")
        study = _study(store, name)
        written = log_sweep_summary(
            store.mlflow, record.mlflow_parent_run_id, study, best_block(study)
        )
    click.echo(
        f"wrote {', '.join(written) or 'nothing (no finished trial yet)'} to the parent "
        f"run {record.mlflow_parent_run_id} of sweep {name}"
    )


@click.command("best")
@click.argument("name")
@click.option(
    "--format",
    "form",
    type=click.Choice(["deepspeed", "json", "yaml"]),
    default="deepspeed",
    show_default=True,
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file instead of printing.",
)
@store_options
def best_command(name: str, form: str, output: Path | None, **options: Any) -> None:
    """The best trial's OneCycle params of sweep NAME, e.g. as a DeepSpeed scheduler block."""
    with open_existing_from_options(options) as store:
        study = _study(store, name)
        block = best_block(study)
    if block is None:
        raise UsageError(f"sweep {name!r} has no completed trial yet")
    params = block["scheduler"]["params"]
    schedulers.normalize_block(block)  # the block we hand out must load in DeepSpeed and here
    if form == "deepspeed":
        text = json.dumps(block, indent=2) + "\n"
    elif form == "json":
        text = json.dumps(params, indent=2) + "\n"
    else:
        text = yaml.safe_dump(params, sort_keys=True)
    if output is None:
        click.echo(text, nl=False)
        return
    if not output.parent.exists():
        raise UsageError(f"{output}: directory {output.parent} does not exist")
    output.write_text(text)
    click.echo(f"wrote {form} params of sweep {name} to {output}")
