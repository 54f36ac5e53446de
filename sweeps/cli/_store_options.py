"""The store flags every command takes, and opening the store they name.

Flags win over the ``ONECYCLE_*`` environment variables, which win over the default
``./.onecycle``. The flags are read by :func:`storage.resolve_store`, so the CLI and the Python
API resolve a store the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from storage import Store, StoreSpec, open_store, resolve_store
from storage.spec import ENV_ARTIFACTS, ENV_DB_PREFIX, ENV_MLFLOW, ENV_OPTUNA, ENV_STORE
from storage.sqlite_dir import holds_no_database, require_existing

F = TypeVar("F", bound=Callable[..., Any])

STORE_HELP = (
    "Store: a directory (SQLite, default ./.onecycle) or postgresql://user@host:5432/ "
    "[env ONECYCLE_STORE]."
)


def store_options(command: F) -> F:
    """Add the store flags: ``--store`` and the per-part overrides."""
    options = [
        click.option("--store", metavar="DIR|URL", help=STORE_HELP),
        click.option(
            "--optuna-storage",
            metavar="URL",
            help="Override: Optuna storage URL [env ONECYCLE_OPTUNA_STORAGE].",
        ),
        click.option(
            "--mlflow-uri",
            metavar="URI",
            help="Override: MLflow tracking URI, e.g. http://127.0.0.1:5000 "
            "[env ONECYCLE_MLFLOW_URI].",
        ),
        click.option(
            "--artifacts",
            metavar="DIR|URI",
            help="Override: artifact location [env ONECYCLE_ARTIFACTS].",
        ),
        click.option(
            "--db-prefix",
            metavar="NAME",
            help="PostgreSQL database name prefix (default onecycle) [env ONECYCLE_DB_PREFIX].",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


#: Each store flag and the variable that sets it.
FLAG_VARIABLES = {
    "store": ENV_STORE,
    "optuna_storage": ENV_OPTUNA,
    "mlflow_uri": ENV_MLFLOW,
    "artifacts": ENV_ARTIFACTS,
    "db_prefix": ENV_DB_PREFIX,
}


def store_env(options: dict[str, Any]) -> dict[str, str]:
    """The store flags given as the ``ONECYCLE_*`` variables that set them, for a worker.

    Flags on a worker's command line would show a password to every user through ``ps``.
    """
    return {FLAG_VARIABLES[key]: str(options[key]) for key in FLAG_VARIABLES if options.get(key)}


def spec_from_options(options: dict[str, Any]) -> StoreSpec:
    """Resolve the store the flags (and environment) name; nothing is touched yet."""
    return resolve_store(
        options.get("store"),
        optuna_storage=options.get("optuna_storage"),
        mlflow_uri=options.get("mlflow_uri"),
        artifacts=options.get("artifacts"),
        db_prefix=options.get("db_prefix"),
    )


def start_writer_early(options: dict[str, Any]) -> None:
    """Start the flags' store's tracking writer now, its MLflow import on another core.

    Only where the tracking URI is known before the store opens: a proxy address
    (``onecycle://``) names its MLflow server only when asked, and a writer started for no URI
    would be one more MLflow import that nothing takes.
    """
    uri = spec_from_options(options).mlflow_uri
    if uri:
        from storage.tracking import start_writer

        start_writer(uri)


def route_to_writer(store: Store) -> Store:
    """Have ``store``'s MLflow work done by a tracking writer (the one started early, if any).

    The command's process then never imports MLflow. Returns ``store``.
    """
    from storage.tracking import start_writer

    writer = start_writer(store.spec.mlflow_uri)
    writer.store_ready()
    store.mlflow_via = writer
    return store


def close_writer(store: Store) -> None:
    """Stop routing ``store``'s MLflow work; close its writer once what it was sent is done.

    A failure of that work is raised.
    """
    from storage.tracking import ProcessTracking

    if store.mlflow_via is not None:
        store.mlflow_via = None
        ProcessTracking.for_uri(store.spec.mlflow_uri).close().raise_errors()


def names_new_directory_store(options: dict[str, Any]) -> bool:
    """The flags name a directory store with neither database in it yet.

    No sweep there can be finished yet. False for anything else, a store the flags fail to name
    included.
    """
    try:  # only a head start: whatever is wrong is said where the store is opened, as ever
        return holds_no_database(spec_from_options(options))
    except Exception:  # e.g. a folder it may not read
        return False


def open_from_options(options: dict[str, Any]) -> Store:
    """Resolve and open the store; raises :class:`storage.StoreError` subclasses."""
    return open_store(spec_from_options(options))


def open_existing_from_options(options: dict[str, Any]) -> Store:
    """Open the store only if it is there: for commands that read, or join, and create nothing."""
    spec = spec_from_options(options)
    require_existing(spec)
    return open_store(spec, create=False)
