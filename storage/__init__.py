"""One store setting for Optuna's study storage and MLflow's backend.

A store is a directory (SQLite files, the default ``./.onecycle``) or a PostgreSQL server URL;
:func:`resolve_store` turns the setting (flags, then ``ONECYCLE_*`` variables) into a
:class:`StoreSpec`, and :func:`open_store` checks it and returns a :class:`Store` with an Optuna
storage, an MLflow client and the sweep records. This package never imports torch.

Example:
    >>> import tempfile, storage
    >>> with storage.open_store(storage.resolve_store(tempfile.mkdtemp(), env={})) as store:
    ...     store.spec.kind
    'directory'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from storage.telemetry import keep_telemetry_off

keep_telemetry_off()  # before anything here imports MLflow: see storage.telemetry

if TYPE_CHECKING:
    from storage.errors import StoreConfigError, StoreError, StoreUnavailable, SweepNotFound
    from storage.info import store_info
    from storage.opening import open_store
    from storage.redact import redact_url, scrub
    from storage.spec import DEFAULT_STORE, ENV_STORE, StoreSpec, resolve_store
    from storage.store import Store
    from storage.sweep_records import SweepExists, SweepRecord, SweepRegistry

#: Where each public name lives: loaded on first use, so ``storage.errors`` (the CLI's error
#: handling) does not pull SQLAlchemy into a command that never opens a store.
_HOMES = {
    "DEFAULT_STORE": "storage.spec",
    "ENV_STORE": "storage.spec",
    "Store": "storage.store",
    "StoreConfigError": "storage.errors",
    "StoreError": "storage.errors",
    "StoreSpec": "storage.spec",
    "StoreUnavailable": "storage.errors",
    "SweepExists": "storage.sweep_records",
    "SweepNotFound": "storage.errors",
    "SweepRecord": "storage.sweep_records",
    "SweepRegistry": "storage.sweep_records",
    "open_store": "storage.opening",
    "redact_url": "storage.redact",
    "resolve_store": "storage.spec",
    "scrub": "storage.redact",
    "store_info": "storage.info",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'storage' has no attribute {name!r}")


__all__ = [
    "DEFAULT_STORE",
    "ENV_STORE",
    "Store",
    "StoreConfigError",
    "StoreError",
    "StoreSpec",
    "StoreUnavailable",
    "SweepExists",
    "SweepNotFound",
    "SweepRecord",
    "SweepRegistry",
    "open_store",
    "redact_url",
    "resolve_store",
    "scrub",
    "store_info",
]
