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

from storage.errors import StoreConfigError, StoreError, StoreUnavailable, SweepNotFound
from storage.info import store_info
from storage.redact import redact_url, scrub
from storage.spec import DEFAULT_STORE, ENV_STORE, StoreSpec, resolve_store
from storage.store import Store, open_store
from storage.sweep_records import SweepExists, SweepRecord, SweepRegistry

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
