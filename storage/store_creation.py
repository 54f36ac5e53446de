"""Creating a store: all of it, or nothing left behind.

A new store is made in one step under its schema lock: its SQLite files (or PostgreSQL
databases), the sweep table, Optuna's schema and MLflow's schema. When any of it fails (a full
disk, a lost server, Ctrl+C), what this step made is removed: the files and databases it
created and the directories :func:`storage.sqlite_dir.prepare_directory` made, never anything
that was there before. Removing, not completing: Optuna's and MLflow's migrations cannot resume
a schema they left half made (MLflow starts over and stops on "index ... already exists"), and
a store whose creation did not finish holds no sweep, so nothing is lost. A process killed
while creating cannot clean up: the marker written before the schemas (a ``.creating`` file
naming the new SQLite files, a comment on each new PostgreSQL database) tells the next open,
which holds the same lock, that they are unfinished, and it removes and creates them again.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from storage.disk_full import is_disk_full, store_full
from storage.errors import StoreConfigError
from storage.postgres import (
    CREATING,
    create_databases,
    database_comments,
    drop_created,
    wanted_databases,
)
from storage.postgres import mark_finished as finish_databases
from storage.spec import StoreSpec
from storage.sqlite_dir import prepare_directory, sqlite_files
from storage.store_locks import lock_path

log = logging.getLogger(__name__)

#: The marker file of a directory store whose creation has not finished.
MARKER = ".creating"
SIDECARS = ("", "-wal", "-shm", "-journal")
NOTHING_KEPT = "nothing of the new store was kept: free space and run again"


@dataclass
class Creation:
    """What opening a store adds to it, so that a failure can take exactly that away."""

    spec: StoreSpec
    #: Directories and lock files made for the store before its lock was taken.
    made: list[Path] = field(default_factory=list)
    #: SQLite files this creation makes.
    files: list[Path] = field(default_factory=list)
    #: PostgreSQL databases this creation makes (filled in as they are created).
    databases: list[str] = field(default_factory=list)
    #: PostgreSQL databases missing from the server.
    missing: list[str] = field(default_factory=list)

    @property
    def new(self) -> bool:
        """Whether this open creates a database (and so creates both schemas at once)."""
        return bool(self.files or self.missing)

    def create_databases(self, attempts: int) -> None:
        """Create the missing PostgreSQL databases, each marked as unfinished."""
        if self.missing:
            self.databases = create_databases(self.spec, self.missing, attempts)

    def mark(self) -> None:
        """Name the new SQLite files in the marker, before any schema goes into them."""
        if self.files and self.spec.directory is not None:
            listed = [{"path": str(f), "inode": f.stat().st_ino} for f in self.files]
            (self.spec.directory / MARKER).write_text(json.dumps(listed))

    def finish(self, attempts: int) -> None:
        """The store is complete: drop the markers."""
        if self.spec.directory is not None:
            (self.spec.directory / MARKER).unlink(missing_ok=True)
        finish_databases(self.spec, self.databases, attempts)

    def undo(self, error: BaseException) -> BaseException:
        """Remove what this creation made; the error to raise in place of ``error``.

        An open that creates no database removes nothing: another process may be using the
        store (and its lock files) by now.
        """
        if self.new:
            try:
                self._remove()
            except Exception as cleanup:  # the original error matters more; say both in the log
                log.warning("could not remove the unfinished store: %s", cleanup)
        where = self.spec.directory
        if not isinstance(error, Exception) or not is_disk_full(error, where):
            return error
        consequence = NOTHING_KEPT if self.new else "free space and run again"
        return store_full("create the store", self.spec.setting, error, consequence)

    def _remove(self) -> None:
        forget_mlflow_engines(self.spec.mlflow_uri)
        drop_created(self.spec, self.databases)
        for database in self.files:
            _remove_database(database)
        if self.spec.directory is not None:
            (self.spec.directory / MARKER).unlink(missing_ok=True)
        for path in reversed(self.made):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def prepare(spec: StoreSpec) -> Creation:
    """Make the directory the lock lives in (if missing); note what was made."""
    made = prepare_directory(spec) if spec.kind == "directory" else []
    files = sqlite_files(spec)
    lock = lock_path(spec, files[0], "schema") if files else None
    if lock is not None and not lock.exists() and not any(lock.is_relative_to(m) for m in made):
        made.append(lock)
    return Creation(spec, made)


def plan(creation: Creation, attempts: int, create: bool) -> Creation:
    """Find what is missing, and what an unfinished creation left; under the schema lock.

    With ``create`` false (commands that only read) a store that is not there, or whose
    creation never finished, is refused with :class:`StoreConfigError` and nothing is touched.
    """
    spec = creation.spec
    leftovers = _unfinished_files(spec)
    comments = database_comments(spec, attempts)
    unfinished = [name for name, comment in comments.items() if comment == CREATING]
    if not create and (leftovers or unfinished or (comments == {} and spec.server_url)):
        raise StoreConfigError(
            f"no store at {spec.describe()} (its databases are not there, or their creation "
            "did not finish); check --store, --db-prefix or ONECYCLE_STORE (`onecycle run` "
            "creates a store)"
        )
    for database in leftovers:
        log.warning("removing %s: its creation did not finish", database)
        _remove_database(database)
    if spec.directory is not None:
        (spec.directory / MARKER).unlink(missing_ok=True)
    if unfinished:
        log.warning("dropping %s: their creation did not finish", ", ".join(unfinished))
        drop_created(spec, unfinished)
    creation.files = [f for f in sqlite_files(spec) if not f.exists()]
    creation.missing = [
        name for name in wanted_databases(spec) if name not in comments or name in unfinished
    ]
    return creation


def _unfinished_files(spec: StoreSpec) -> list[Path]:
    """The SQLite files a marker names that are still the files the creation made."""
    if spec.directory is None:
        return []
    marker = spec.directory / MARKER
    try:
        listed = json.loads(marker.read_text())
    except (OSError, ValueError):
        return []
    found = []
    for entry in listed:
        path = Path(entry["path"])
        if path.exists() and path.stat().st_ino == entry.get("inode"):
            found.append(path)
    return found


def _remove_database(database: Path) -> None:
    for suffix in SIDECARS:
        Path(f"{database}{suffix}").unlink(missing_ok=True)


def forget_mlflow_engines(uri: str) -> None:
    """Dispose of the engine and store MLflow keeps for ``uri`` for the whole process.

    Without this, a later open in the same process would write through pooled connections to
    a database file that was just removed (or a database that was dropped).
    """
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry
    except ImportError:  # another MLflow layout: nothing cached that we know of
        return
    engine = SqlAlchemyStore._engine_map.pop(uri, None)
    if engine is not None:
        engine.dispose()
    _tracking_store_registry._get_store_with_resolved_uri.cache_clear()
