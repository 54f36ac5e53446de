"""``open_store``: a directory or PostgreSQL store, or a storage proxy's address.

The two ways to open live apart (:mod:`storage.store` and :mod:`storage.proxy_client`, which
builds on it); this module only chooses, so neither imports the other's way back.
"""

from __future__ import annotations

from storage.connect import ATTEMPTS
from storage.spec import StoreSpec
from storage.store import Store, open_database_store


def open_store(spec: StoreSpec, attempts: int = ATTEMPTS, *, create: bool = True) -> Store:
    """Open the store ``spec`` names; raises :class:`storage.StoreError` subclasses.

    A directory or PostgreSQL store is checked and created if missing (``create=False``, for
    commands that only read, refuses one that is not there). A proxy address
    (``onecycle://host:port``) is reached: ``onecycle serve`` created its store.

    Example:
        >>> import tempfile
        >>> from storage.spec import resolve_store
        >>> store = open_store(resolve_store(tempfile.mkdtemp(), env={}))
        >>> store.sweeps.list()
        []
    """
    if spec.kind == "proxy":
        from storage.proxy_client import open_proxy_store

        return open_proxy_store(spec, attempts)
    return open_database_store(spec, attempts, create=create)
