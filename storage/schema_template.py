"""A new SQLite store's MLflow schema, copied from one made before instead of migrated again.

MLflow makes a schema by running every Alembic migration since its first release: about 1 s
of one core for each new store (5 s on a loaded machine), more than a one-epoch trial trains.
The first new SQLite store of an installed MLflow runs them as before and keeps a copy of the
still empty schema in the user's cache; later new stores start from that copy, and MLflow,
finding its tables at its head revision, migrates nothing. The copy leaves out MLflow's default
experiment, whose row names the first store's artifact root: MLflow adds it for each store.

A copy is used only when it is whole (SQLite's integrity check) and stamped with the installed
MLflow's head revision; anything else is removed and the store is migrated as before. The
cache is ``$ONECYCLE_CACHE_DIR``, else ``$XDG_CACHE_HOME/onecycle``, else
``~/.cache/onecycle``; ``ONECYCLE_SCHEMA_CACHE=0`` turns it off. PostgreSQL stores always
migrate (a template database would be one more database on the user's server).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from pathlib import Path

from storage.schema_age import installed_revisions

log = logging.getLogger(__name__)

#: Tables MLflow's migrations fill themselves; anything else holding rows is not an empty schema.
FILLED_BY_MIGRATIONS = frozenset({"alembic_version", "workspaces"})
DEFAULT_EXPERIMENT = 0


def cache_dir() -> Path | None:
    """Where schema copies are kept; None when the cache is turned off or has no home."""
    if os.environ.get("ONECYCLE_SCHEMA_CACHE", "1") == "0":
        return None
    chosen = os.environ.get("ONECYCLE_CACHE_DIR")
    if chosen:
        return Path(chosen)
    xdg = os.environ.get("XDG_CACHE_HOME")
    try:
        return Path(xdg) / "onecycle" if xdg else Path.home() / ".cache" / "onecycle"
    except RuntimeError:  # no home directory to be found
        return None


def template_path() -> tuple[Path, str] | None:
    """The installed MLflow's schema copy (which may not exist yet) and its head revision."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        revisions = installed_revisions("mlflow")
    except (RuntimeError, OSError, ImportError):
        return None
    return folder / f"mlflow-schema-{revisions.version}-{revisions.head}.sqlite", revisions.head


def seed(database: Path) -> bool:
    """Fill the new, empty SQLite ``database`` with the kept schema; False when there is none.

    A write that fails (a full disk) raises: the store's creation then removes the file.
    """
    found = template_path()
    if found is None or not found[0].is_file():
        return False
    template, head = found
    if not _usable(template, head):
        with contextlib.suppress(OSError):
            template.unlink()
        return False
    source = sqlite3.connect(f"file:{template}?mode=ro", uri=True)
    target = sqlite3.connect(database)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    log.debug("MLflow schema of %s copied from %s", database, template)
    return True


def keep(database: Path) -> None:
    """Keep the schema MLflow just made in ``database`` for later new stores (once).

    Called before anything but MLflow's default experiment is in it. Every failure (a
    read-only home, a full disk, another MLflow's rows) only means no copy is kept.
    """
    found = template_path()
    if found is None or found[0].exists():
        return
    template, head = found
    partial = template.with_name(f".{template.name}.{os.getpid()}")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(database)
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)
            _empty(copy)
        finally:
            source.close()
            copy.close()
        if not _usable(partial, head):
            raise sqlite3.DatabaseError(f"the copy is not an empty schema at {head}")
        os.replace(partial, template)
        log.debug("kept MLflow's new schema as %s", template)
    except (OSError, sqlite3.Error) as error:
        log.debug("no MLflow schema copy kept in %s: %s", template.parent, error)
        with contextlib.suppress(OSError):
            partial.unlink()


def _empty(copy: sqlite3.Connection) -> None:
    """Take the default experiment out of a fresh schema; refuse one holding anything else."""
    copy.execute("DELETE FROM experiment_tags WHERE experiment_id = ?", (DEFAULT_EXPERIMENT,))
    copy.execute("DELETE FROM experiments WHERE experiment_id = ?", (DEFAULT_EXPERIMENT,))
    copy.commit()
    copy.execute("PRAGMA journal_mode = DELETE")
    for table in _tables(copy):
        if table not in FILLED_BY_MIGRATIONS and _has_rows(copy, table):
            raise sqlite3.DatabaseError(f"table {table} of the new schema holds rows")


def _usable(template: Path, head: str) -> bool:
    """Whether ``template`` is a whole SQLite file stamped with MLflow's ``head`` revision."""
    try:
        connection = sqlite3.connect(f"file:{template}?mode=ro", uri=True)
        try:
            whole = connection.execute("PRAGMA integrity_check").fetchone()
            stamps = connection.execute("SELECT version_num FROM alembic_version").fetchall()
            experiments = connection.execute("SELECT count(*) FROM experiments").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as error:
        log.debug("MLflow schema copy %s is not usable: %s", template, error)
        return False
    return whole == ("ok",) and stamps == [(head,)] and experiments == (0,)


def _tables(connection: sqlite3.Connection) -> list[str]:
    rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return [str(name) for (name,) in rows if not str(name).startswith("sqlite_")]


def _has_rows(connection: sqlite3.Connection, table: str) -> bool:
    quoted = table.replace('"', '""')
    return connection.execute(f'SELECT 1 FROM "{quoted}" LIMIT 1').fetchone() is not None
