"""What a storage proxy and its workers say to each other beyond Optuna's storage calls.

Optuna's gRPC service carries asks, tells and trial reads; a sweep's workers also need the
store-wide lock, heartbeats and the stale-trial checks, the sweep records and trial counts.
Those travel on the same gRPC server as one more service whose messages are JSON, so no code
is generated for them. A call answers ``{"ok": value}`` or ``{"error": [kind, message]}``; the
client raises the store error of that kind (:func:`raised`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from storage.errors import StoreConfigError, StoreError, StoreUnavailable, SweepNotFound
from storage.sweep_records import SweepExists, SweepRecord

#: The gRPC service name of the coordination calls.
SERVICE = "onecycle.Coordination"
#: Each call's name.
HELLO, LOCK, UNLOCK, BEAT, STALE, LOST, COUNT, SWEEPS = (
    "Hello",
    "Lock",
    "Unlock",
    "Beat",
    "Stale",
    "Lost",
    "Count",
    "Sweeps",
)
METHODS = (HELLO, LOCK, UNLOCK, BEAT, STALE, LOST, COUNT, SWEEPS)

#: The store errors a call may answer with, by name.
ERRORS: dict[str, type[StoreError]] = {
    cls.__name__: cls
    for cls in (StoreError, StoreConfigError, StoreUnavailable, SweepNotFound, SweepExists)
}


def path(method: str) -> str:
    """The gRPC method path of ``method``."""
    return f"/{SERVICE}/{method}"


def encode(value: Any) -> bytes:
    """JSON bytes of a request or an answer."""
    return json.dumps(value, separators=(",", ":")).encode()


def decode(data: bytes) -> Any:
    """A request or an answer from its JSON bytes."""
    return json.loads(data)


def record_to_json(record: SweepRecord) -> dict[str, Any]:
    """A sweep record as JSON (times as ISO 8601)."""
    return {
        "name": record.name,
        "config": record.config,
        "status": record.status,
        "study_name": record.study_name,
        "mlflow_experiment_id": record.mlflow_experiment_id,
        "mlflow_parent_run_id": record.mlflow_parent_run_id,
        "created_at": record.created_at.isoformat() if record.created_at else None,
        "updated_at": record.updated_at.isoformat() if record.updated_at else None,
    }


def record_from_json(data: dict[str, Any]) -> SweepRecord:
    """The sweep record :func:`record_to_json` wrote.

    Example:
        >>> record = SweepRecord("a", {"x": 1}, "running", "a-study")
        >>> record_from_json(record_to_json(record)) == record
        True
    """

    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    return SweepRecord(
        name=data["name"],
        config=data["config"],
        status=data["status"],
        study_name=data["study_name"],
        mlflow_experiment_id=data["mlflow_experiment_id"],
        mlflow_parent_run_id=data["mlflow_parent_run_id"],
        created_at=when(data["created_at"]),
        updated_at=when(data["updated_at"]),
    )


def raised(answer: dict[str, Any]) -> Any:
    """The answer's value, or its error raised as the store error it names."""
    if "error" in answer:
        kind, message = answer["error"]
        raise ERRORS.get(kind, StoreError)(message)
    return answer["ok"]
