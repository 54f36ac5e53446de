"""Refusing a store whose schemas are out of date, and ``onecycle store upgrade``.

The refusal comes before anything is written (see :mod:`storage.schema_age`). The upgrade
copies every SQLite file first (SQLite's online backup, so a WAL file's pages are in the copy),
then runs Optuna's and MLflow's own migrations under the store's schema lock. PostgreSQL
databases are not copied: the command asks for ``--yes`` after the user has dumped them.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from storage.errors import StoreConfigError
from storage.schema_age import NAMES, SchemaState, database_urls, schema_state
from storage.spec import StoreSpec
from storage.sqlite_dir import sqlite_files
from storage.store_locks import schema_lock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upgraded:
    """One database's migration: from which revision to which."""

    library: str
    before: str | None
    after: str | None


def schema_states(spec: StoreSpec) -> list[SchemaState]:
    """The store's Optuna and MLflow schemas next to the installed libraries'."""
    urls = database_urls(spec.optuna_url, spec.mlflow_uri)
    return [schema_state(library, url) for library, url in urls.items()]


def upgrade_command(spec: StoreSpec) -> str:
    """The command that upgrades ``spec``'s store, as it is safe to print."""
    words = ["onecycle store upgrade", f"--store {spec.describe()}"]
    if spec.server_url is not None:
        words += [f"--db-prefix {spec.db_prefix}", "--yes"]
    return " ".join(words)


def refuse_out_of_date(spec: StoreSpec, states: list[SchemaState] | None = None) -> None:
    """Raise :class:`StoreConfigError` when either schema is not the installed library's."""
    states = schema_states(spec) if states is None else states
    newer = [state for state in states if state.newer]
    if newer:
        libraries = " and ".join(NAMES[state.library].lower() for state in newer)
        raise StoreConfigError(
            f"store {spec.describe()} cannot be opened: {_clauses(newer)}; install a newer "
            f"{libraries} to use it"
        )
    older = [state for state in states if state.older]
    if older:
        raise StoreConfigError(
            f"store {spec.describe()} is out of date: {_clauses(older)}; nothing was changed. "
            f"Run `{upgrade_command(spec)}` to migrate it (SQLite files are copied first)"
        )


def upgrade_store(spec: StoreSpec, confirmed: bool = False) -> tuple[list[Upgraded], Path | None]:
    """Migrate both schemas to the installed libraries'; the migrations and the copy's folder.

    Raises :class:`StoreConfigError` for a store that is not there, one from a newer library,
    or PostgreSQL databases without ``confirmed`` (they are not copied).
    """
    states = schema_states(spec)
    if all(state.found is None for state in states):
        raise StoreConfigError(f"no store at {spec.describe()}: nothing to upgrade")
    refuse_out_of_date(spec, [state for state in states if state.newer])
    older = [state for state in states if state.older]
    if not older:
        return [Upgraded(s.library, s.found, s.found) for s in states], None
    if spec.server_url is not None and not confirmed:
        raise StoreConfigError(
            f"--yes: required to migrate the PostgreSQL databases of {spec.describe()}, which "
            "are not copied first; back them up (pg_dump) and run again with --yes"
        )
    with schema_lock(spec, spec.optuna_url):
        copy = _copy_sqlite_files(spec)
        for state in older:
            log.info("migrating %s's schema from %s", NAMES[state.library], state.found)
            _MIGRATE[state.library](state.url)
    after = {state.library: state.found for state in schema_states(spec)}
    return [Upgraded(s.library, s.found, after[s.library]) for s in states], copy


def _clauses(states: list[SchemaState]) -> str:
    return "; ".join(state.explain() for state in states)


def _copy_sqlite_files(spec: StoreSpec) -> Path | None:
    files = [path for path in sqlite_files(spec) if path.exists()]
    if not files:
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = files[0].parent / "backups" / f"before-upgrade-{stamp}"
    folder.mkdir(parents=True, exist_ok=False)
    for path in files:
        source = sqlite3.connect(path)
        target = sqlite3.connect(folder / path.name)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
    return folder


def _migrate_optuna(url: str) -> None:
    import optuna

    from storage.connect import engine_kwargs

    storage = optuna.storages.RDBStorage(
        url, engine_kwargs=engine_kwargs(url), skip_compatibility_check=True
    )
    try:
        storage.upgrade()
    finally:
        storage.engine.dispose()


def _migrate_mlflow(url: str) -> None:
    from mlflow.store.db.utils import _upgrade_db

    from storage.connect import engine_for

    engine = engine_for(url)
    try:
        _upgrade_db(engine)  # type: ignore[no-untyped-call]
    finally:
        engine.dispose()


_MIGRATE = {"optuna": _migrate_optuna, "mlflow": _migrate_mlflow}
