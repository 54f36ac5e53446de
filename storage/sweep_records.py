"""The durable record of each sweep, kept in the store next to its Optuna study.

A second worker or a restarted process finds everything about a sweep by name from the store
alone: the full validated config, its status, the Optuna study name, and the MLflow
experiment and parent run ids. The table lives in the Optuna database (``onecycle_sweeps``);
Optuna's migrations leave tables they do not own alone. Config strings are scrubbed of
passwords before they are written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Literal, cast

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from storage.errors import StoreConfigError, StoreError, SweepNotFound
from storage.redact import scrub

SweepStatus = Literal["created", "running", "finished", "failed", "stopped"]
STATUSES: tuple[SweepStatus, ...] = ("created", "running", "finished", "failed", "stopped")

_metadata = MetaData()
sweeps_table = Table(
    "onecycle_sweeps",
    _metadata,
    Column("name", String(200), primary_key=True),
    Column("config_json", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("study_name", String(512), nullable=False),
    Column("mlflow_experiment_id", String(64), nullable=True),
    Column("mlflow_parent_run_id", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class SweepRecord:
    """What the store knows about one sweep."""

    name: str
    config: dict[str, Any]
    status: SweepStatus
    study_name: str
    mlflow_experiment_id: str | None = None
    mlflow_parent_run_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class SweepExists(StoreError):
    """A sweep of that name is already recorded."""


def without_secrets(value: Any) -> Any:
    """Copy a JSON-like value with every ``user:password@`` in its strings redacted.

    Example:
        >>> without_secrets({"url": "postgresql://a:b@h/"})
        {'url': 'postgresql://a:***@h/'}
    """
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: without_secrets(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_secrets(item) for item in value]
    return value


class SweepRegistry:
    """Create, read, update and list sweep records in one database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create_schema(self) -> None:
        """Create the table if missing; safe to call from several processes at once."""
        try:
            _metadata.create_all(self._engine, checkfirst=True)
        except (OperationalError, ProgrammingError, IntegrityError) as error:
            # Two processes raced to create it; the table exists now or the error is real.
            if "already exists" not in str(error) and "duplicate" not in str(error).lower():
                raise
            _metadata.create_all(self._engine, checkfirst=True)

    def create(self, record: SweepRecord) -> SweepRecord:
        """Record a new sweep; raise :class:`SweepExists` if the name is taken."""
        if record.status not in STATUSES:
            raise StoreConfigError(
                f"`status` must be one of {list(STATUSES)}, got {record.status!r}"
            )
        now = datetime.now(timezone.utc)
        stored = replace(
            record, config=without_secrets(record.config), created_at=now, updated_at=now
        )
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(sweeps_table).values(**_row(stored)))
        except IntegrityError:
            raise SweepExists(
                f"a sweep named {record.name!r} already exists in the store"
            ) from None
        return stored

    def get(self, name: str) -> SweepRecord:
        """The record of ``name``; raise :class:`SweepNotFound` with the known names."""
        with self._engine.connect() as connection:
            row = (
                connection.execute(select(sweeps_table).where(sweeps_table.c.name == name))
                .mappings()
                .first()
            )
        if row is None:
            known = [r.name for r in self.list()]
            raise SweepNotFound(
                f"no sweep named {name!r} in the store; known sweeps: {known or 'none'}"
            )
        return _record(dict(row))

    def find(self, name: str) -> SweepRecord | None:
        """The record of ``name``, or None."""
        try:
            return self.get(name)
        except SweepNotFound:
            return None

    def update(self, name: str, **changes: Any) -> SweepRecord:
        """Change fields of a record (status, MLflow ids, config); returns the new record."""
        allowed = {"status", "mlflow_experiment_id", "mlflow_parent_run_id", "config"}
        unknown = set(changes) - allowed
        if unknown:
            raise StoreConfigError(f"cannot update sweep fields {sorted(unknown)}")
        if "status" in changes and changes["status"] not in STATUSES:
            raise StoreConfigError(
                f"`status` must be one of {list(STATUSES)}, got {changes['status']!r}"
            )
        values: dict[str, Any] = {k: v for k, v in changes.items() if k != "config"}
        if "config" in changes:
            values["config_json"] = json.dumps(without_secrets(changes["config"]), sort_keys=True)
        values["updated_at"] = datetime.now(timezone.utc)
        with self._engine.begin() as connection:
            result = connection.execute(
                update(sweeps_table).where(sweeps_table.c.name == name).values(**values)
            )
        if result.rowcount == 0:
            raise SweepNotFound(f"no sweep named {name!r} in the store")
        return self.get(name)

    def delete(self, name: str) -> None:
        """Forget a sweep record (the study and runs are not touched)."""
        with self._engine.begin() as connection:
            connection.execute(delete(sweeps_table).where(sweeps_table.c.name == name))

    def list(self) -> list[SweepRecord]:
        """Every recorded sweep, oldest first."""
        with self._engine.connect() as connection:
            rows = (
                connection.execute(select(sweeps_table).order_by(sweeps_table.c.created_at))
                .mappings()
                .all()
            )
        return [_record(dict(row)) for row in rows]


def _row(record: SweepRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "config_json": json.dumps(record.config, sort_keys=True),
        "status": record.status,
        "study_name": record.study_name,
        "mlflow_experiment_id": record.mlflow_experiment_id,
        "mlflow_parent_run_id": record.mlflow_parent_run_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def _record(row: dict[str, Any]) -> SweepRecord:
    return SweepRecord(
        name=row["name"],
        config=json.loads(row["config_json"]),
        status=cast(SweepStatus, row["status"]),
        study_name=row["study_name"],
        mlflow_experiment_id=row["mlflow_experiment_id"],
        mlflow_parent_run_id=row["mlflow_parent_run_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
