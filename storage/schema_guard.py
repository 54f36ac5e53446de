"""Whether another library's tables are the ones our direct writers were written against.

The bulk writers (``bulk_metrics``, ``bulk_runs``, ``bulk_trials``) insert rows into MLflow's
and Optuna's own tables. Their schemas belong to those libraries and can change with a release,
so each writer looks once at the database it touches and steps aside (back to the library's
API) unless its schema revision is one CI has tested (:mod:`storage.schema_revisions`) and its
tables have exactly the columns the writer knows.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any, ClassVar, TypeVar

from sqlalchemy import Engine, MetaData, Table, inspect

from storage.schema_revisions import revision_known

KNOWN_DIALECTS = ("sqlite", "postgresql")
W = TypeVar("W", bound="TableWriter")


def tables_match(
    engine: Engine,
    library: str,
    columns: Mapping[str, set[str]],
    read_only: Container[str] = (),
    defaulted: Mapping[str, set[str]] | None = None,
) -> bool:
    """True when ``library``'s schema is at a known revision with exactly ``columns``.

    Tables in ``read_only`` need at least their columns. ``defaulted``: per table, columns that
    some known revisions add with a server default (a writer leaves them to the database).
    """
    if engine.dialect.name not in KNOWN_DIALECTS or not revision_known(engine, library):
        return False
    try:
        tables = inspect(engine)
        for name, expected in columns.items():
            found = {column["name"] for column in tables.get_columns(name)}
            exact = found in (expected, expected | (defaulted or {}).get(name, set()))
            if not expected <= found or (name not in read_only and not exact):
                return False
    except Exception:  # a missing table, no permission: any doubt means the library's API
        return False
    return True


def dialect_insert(engine: Engine) -> Any:
    """The dialect's ``insert`` (the one with ``on_conflict_do_*``) for ``engine``.

    Imported here: SQLAlchemy's PostgreSQL dialect takes about 20 ms to import, which a
    read-only command on a SQLite store (``status``) has no use for.
    """
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


class TableWriter:
    """A bulk writer: an engine, the tables it writes (reflected once), the dialect's insert.

    Subclasses name the library whose tables they write in ``LIBRARY``, those tables and their
    columns in ``COLUMNS``, the ones they only read in ``READ_ONLY`` and columns they leave to
    the database's default in ``DEFAULTED``.
    """

    LIBRARY: ClassVar[str] = ""
    COLUMNS: ClassVar[Mapping[str, set[str]]] = {}
    READ_ONLY: ClassVar[frozenset[str]] = frozenset()
    DEFAULTED: ClassVar[Mapping[str, set[str]]] = {}

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata = MetaData()
        self.tables = {name: Table(name, metadata, autoload_with=engine) for name in self.COLUMNS}
        self._insert = dialect_insert(engine)

    @classmethod
    def for_engine(cls: type[W], engine: Engine) -> W | None:
        """A writer over ``engine``, or None when its tables are not the ones this one knows."""
        known = tables_match(engine, cls.LIBRARY, cls.COLUMNS, cls.READ_ONLY, cls.DEFAULTED)
        return cls(engine) if known else None

    @classmethod
    def for_uri(cls: type[W], uri: str, kept: bool = False) -> W | None:
        """A writer for the database at ``uri``; None for anything else (an HTTP server).

        ``kept``: the writer writes all the time, so its engine keeps a connection.
        """
        from storage.connect import engine_for

        if not uri.startswith(("sqlite:", "postgresql")):
            return None
        try:
            engine = engine_for(uri, kept)
        except Exception:  # any doubt: the library's own API
            return None
        writer = cls.for_engine(engine)
        if writer is None:
            engine.dispose()
        return writer
