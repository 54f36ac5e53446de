"""Many MLflow runs' statuses at once, to compare them with their trials' states.

Checking a resumed sweep's runs one ``get_run`` at a time costs a query (or an HTTP call) per
trial, and ``search_runs`` reads every run's params, tags and metrics too. Where the tracking
URI is a database whose ``runs`` table has the columns known here (:mod:`storage.schema_guard`)
one query per thousand runs answers; elsewhere (a tracking server) ``search_runs`` does, page
by page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import MetaData, Table, select

from storage.schema_guard import tables_match

if TYPE_CHECKING:
    from mlflow import MlflowClient

COLUMNS = {"runs": {"run_uuid", "status"}}
#: Run ids per query (SQLite allows 32,766 parameters; PostgreSQL far more).
CHUNK = 1000


def run_statuses(
    client: MlflowClient, uri: str, run_ids: Sequence[str], parent_run_id: str = ""
) -> dict[str, str]:
    """``{run id: status}`` for the ``run_ids`` that exist (deleted ones included)."""
    if not run_ids:
        return {}
    from_tables = statuses_in_tables(uri, run_ids)
    if from_tables is not None:
        return from_tables
    return _from_search(client, run_ids, parent_run_id)


def statuses_in_tables(uri: str, run_ids: Sequence[str]) -> dict[str, str] | None:
    """``{run id: status}`` read from MLflow's ``runs`` table; None where it cannot be read so."""
    from storage.connect import engine_for

    if not uri.startswith(("sqlite:", "postgresql")):
        return None
    engine = engine_for(uri)
    try:
        if not tables_match(engine, "mlflow", COLUMNS, read_only=COLUMNS):
            return None
        runs = Table("runs", MetaData(), autoload_with=engine)
        found: dict[str, str] = {}
        with engine.connect() as connection:
            for start in range(0, len(run_ids), CHUNK):
                chunk = list(run_ids[start : start + CHUNK])
                rows = connection.execute(
                    select(runs.c.run_uuid, runs.c.status).where(runs.c.run_uuid.in_(chunk))
                )
                found.update({str(run_id): str(status) for run_id, status in rows})
        return found
    finally:
        engine.dispose()


def _from_search(
    client: MlflowClient, run_ids: Sequence[str], parent_run_id: str
) -> dict[str, str]:
    """Through the client: the parent's children page by page, else run by run."""
    from mlflow.entities import ViewType

    wanted = set(run_ids)
    found: dict[str, str] = {}
    if parent_run_id:
        experiment = client.get_run(parent_run_id).info.experiment_id
        token: str | None = None
        while True:
            page = client.search_runs(
                [experiment],
                filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                run_view_type=ViewType.ALL,
                max_results=1000,
                page_token=token,
            )
            found.update({r.info.run_id: r.info.status for r in page if r.info.run_id in wanted})
            token = page.token
            if not token:
                break
    for run_id in wanted - set(found):
        try:
            found[run_id] = client.get_run(run_id).info.status
        except Exception:  # a run that is gone has no status to agree with
            continue
    return found
