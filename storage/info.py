"""What ``onecycle store info`` reports: backends, versions, sweeps, sizes; never a secret."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from storage.connect import engine_for
from storage.redact import redact_url
from storage.sqlite_dir import file_size, sqlite_path, tree_size
from storage.store import Store


def database_facts(url: str) -> dict[str, Any]:
    """Backend, server version and size in bytes of the database behind ``url``."""
    if url.startswith(("http://", "https://")):
        return {"backend": "mlflow-server", "url": redact_url(url)}
    backend = make_url(url).get_backend_name()
    facts: dict[str, Any] = {"backend": backend, "url": redact_url(url)}
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            if backend == "sqlite":
                facts["server_version"] = connection.execute(
                    text("select sqlite_version()")
                ).scalar()
                path = sqlite_path(url)
                facts["size_bytes"] = file_size(path) if path else 0
            elif backend == "postgresql":
                facts["server_version"] = connection.execute(text("show server_version")).scalar()
                facts["size_bytes"] = connection.execute(
                    text("select pg_database_size(current_database())")
                ).scalar()
    finally:
        engine.dispose()
    return facts


def _experiment_count(store: Store) -> int:
    """Active MLflow experiments: one query on MLflow's table, without importing MLflow.

    MLflow's import costs more than the rest of ``store info``; its client answers only for a
    tracking server, or a table this query does not fit.
    """
    uri = store.spec.mlflow_uri
    if not uri.startswith(("http://", "https://")):
        engine = engine_for(uri)
        try:
            with engine.connect() as connection:
                found = connection.execute(
                    text("select count(*) from experiments where lifecycle_stage = 'active'")
                ).scalar()
            return int(found or 0)
        except SQLAlchemyError:
            pass
        finally:
            engine.dispose()
    return len(store.mlflow.search_experiments(max_results=1000))


def store_info(store: Store) -> dict[str, Any]:
    """A JSON-ready description of the store (passwords redacted).

    Example:
        >>> import tempfile
        >>> from storage import open_store, resolve_store
        >>> info = store_info(open_store(resolve_store(tempfile.mkdtemp(), env={})))
        >>> info["kind"], info["optuna"]["backend"], info["sweeps"]
        ('directory', 'sqlite', [])
    """
    import optuna

    spec = store.spec
    optuna_facts = database_facts(spec.optuna_url)
    optuna_facts["optuna_version"] = optuna.__version__
    optuna_facts["schema_version"] = store.optuna_storage.get_current_version()
    experiments = _experiment_count(store)
    mlflow_facts = database_facts(spec.mlflow_uri)
    mlflow_facts["mlflow_version"] = metadata.version("mlflow")
    mlflow_facts["experiments"] = experiments
    artifacts: dict[str, Any] = {
        "location": redact_url(spec.artifact_location) or "(the tracking server's default)"
    }
    if spec.artifact_location and "://" not in spec.artifact_location:
        artifacts["size_bytes"] = tree_size(Path(spec.artifact_location))
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(store.optuna_storage)}
    sweeps = []
    for record in store.sweeps.list():
        summary = summaries.get(record.study_name)
        sweeps.append(
            {
                "name": record.name,
                "status": record.status,
                "study": record.study_name,
                "trials": summary.n_trials if summary else 0,
                "mlflow_experiment_id": record.mlflow_experiment_id,
                "created_at": record.created_at.isoformat() if record.created_at else None,
            }
        )
    return {
        "store": spec.describe(),
        "kind": spec.kind,
        "optuna": optuna_facts,
        "mlflow": mlflow_facts,
        "artifacts": artifacts,
        "sweeps": sweeps,
    }
