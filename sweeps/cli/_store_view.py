"""``onecycle store info``: what the store holds, printed as a table or JSON."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from storage import Store, store_info
from sweeps.cli._store_options import open_existing_from_options, store_options
from sweeps.errors import UsageError


@click.group("store")
def store_group() -> None:
    """Inspect or upgrade the store (where studies and runs live)."""


@store_group.command("info")
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def store_info_command(as_json: bool, **options: str | None) -> None:
    """Backends, versions, sweeps and sizes of the store (no secrets); creates nothing."""
    _not_through_a_proxy("store info", options)
    with open_existing_from_options(options) as opened:
        show_info(opened, Console(), as_json=as_json)


@store_group.command("upgrade")
@store_options
@click.option(
    "--yes", is_flag=True, help="Migrate PostgreSQL databases (not copied first: dump them)."
)
def store_upgrade_command(yes: bool, **options: str | None) -> None:
    """Migrate an out-of-date store to the installed Optuna's and MLflow's schemas.

    SQLite files are copied to backups/ beside them first; nothing else is touched.
    """
    from storage.store_upgrade import upgrade_store
    from sweeps.cli._store_options import spec_from_options

    _not_through_a_proxy("store upgrade", options)
    spec = spec_from_options(options)
    migrations, copy = upgrade_store(spec, confirmed=yes)
    console = Console()
    if copy is not None:
        console.print(f"copied the SQLite files to {copy}")
    for step in migrations:
        change = "already current" if step.before == step.after else f"from {step.before}"
        console.print(f"{step.library}: schema {step.after} ({change})")


def _not_through_a_proxy(command: str, options: dict[str, str | None]) -> None:
    """Refuse a proxy address: these commands read or migrate the databases themselves."""
    from sweeps.cli._store_options import spec_from_options

    spec = spec_from_options(options)
    if spec.kind == "proxy":
        raise UsageError(
            f"--store: `{command}` works on the databases themselves, not through a storage "
            f"proxy ({spec.describe()}); run it where `onecycle serve` runs, with its --store"
        )


def _size(value: object) -> str:
    if not isinstance(value, int):
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return "-"


def show_info(store: Store, console: Console, as_json: bool = False) -> None:
    """Render :func:`storage.store_info` for a person (or a script with ``as_json``)."""
    info = store_info(store)
    if as_json:
        console.print_json(json.dumps(info, default=str))
        return
    console.print(f"store: [bold]{info['store']}[/bold] ({info['kind']})")
    parts = Table(title="backends", title_justify="left")
    for column in ("part", "backend", "where", "version", "size"):
        parts.add_column(column, overflow="fold")
    optuna_info, mlflow_info = info["optuna"], info["mlflow"]
    parts.add_row(
        "optuna",
        optuna_info["backend"],
        optuna_info["url"],
        f"optuna {optuna_info['optuna_version']}, schema {optuna_info['schema_version']}, "
        f"server {optuna_info.get('server_version', '-')}",
        _size(optuna_info.get("size_bytes")),
    )
    parts.add_row(
        "mlflow",
        mlflow_info["backend"],
        mlflow_info["url"],
        f"mlflow {mlflow_info['mlflow_version']}, server {mlflow_info.get('server_version', '-')}",
        _size(mlflow_info.get("size_bytes")),
    )
    parts.add_row(
        "artifacts",
        "files",
        info["artifacts"]["location"],
        "-",
        _size(info["artifacts"].get("size_bytes")),
    )
    console.print(parts)
    if not info["sweeps"]:
        console.print("sweeps: none yet")
        return
    sweeps = Table(title="sweeps", title_justify="left")
    for column in ("name", "status", "trials", "study", "MLflow experiment", "created"):
        sweeps.add_column(column)
    for sweep in info["sweeps"]:
        sweeps.add_row(
            sweep["name"],
            sweep["status"],
            str(sweep["trials"]),
            sweep["study"],
            str(sweep["mlflow_experiment_id"] or "-"),
            str(sweep["created_at"] or "-"),
        )
    console.print(sweeps)
