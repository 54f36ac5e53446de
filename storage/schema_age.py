"""Whether a store's Optuna and MLflow schemas are the ones the installed libraries write.

Both libraries refuse a schema that is not at their newest revision, each with its own
multi-line error and its own upgrade command (which would take the URL, password and all, on a
command line). A store is checked here when it is opened, before anything is written, so that
an old store is refused in one line naming it and ``onecycle store upgrade``, which copies
SQLite files first and then runs both libraries' migrations. Nothing is migrated silently.

The installed libraries' revisions are read from their migration scripts' headers, without
importing either library, so read-only commands stay cheap.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from storage.schema_revisions import schema_revision

#: Where each library keeps its Alembic revisions, inside its package.
MIGRATIONS = {
    "optuna": ("optuna", "storages/_rdb/alembic/versions"),
    "mlflow": ("mlflow", "store/db_migrations/versions"),
}
NAMES = {"optuna": "Optuna", "mlflow": "MLflow"}
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"']+)["']""")


@dataclass(frozen=True)
class Revisions:
    """An installed library's migration graph: its head and every revision it knows."""

    version: str
    head: str
    known: frozenset[str]


@dataclass(frozen=True)
class SchemaState:
    """One database's schema next to the installed library's."""

    library: str
    url: str
    found: str | None
    installed: Revisions

    @property
    def older(self) -> bool:
        """Written by an older release: the installed library can migrate it."""
        return self.found in self.installed.known and self.found != self.installed.head

    @property
    def newer(self) -> bool:
        """Written by a release the installed library does not know (a newer one)."""
        return self.found is not None and self.found not in self.installed.known

    def explain(self) -> str:
        """What is wrong with this schema, in a clause."""
        name = NAMES[self.library]
        mine = f"{name} {self.installed.version} writes {self.installed.head}"
        age = "an older" if self.older else "a newer"
        return f"its {name} schema is at {self.found}, from {age} {name} ({mine})"


@functools.cache
def installed_revisions(library: str) -> Revisions:
    """The installed ``library``'s head revision and all revisions, read from its scripts."""
    package, relative = MIGRATIONS[library]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{package} is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / relative
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in folder.glob("*.py"):
        fields = dict(_ASSIGNMENT.findall(script.read_text(encoding="utf-8")))
        revisions.update(_QUOTED.findall(fields.get("revision", "")))
        parents.update(_QUOTED.findall(fields.get("down_revision", "")))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"{package}'s migrations in {folder} have {len(heads)} heads")
    return Revisions(importlib.metadata.version(package), heads.pop(), frozenset(revisions))


def schema_state(library: str, url: str) -> SchemaState:
    """The schema of ``library``'s database at ``url`` (a SQLAlchemy URL)."""
    from storage.connect import engine_for

    engine = engine_for(url)
    try:
        found = schema_revision(engine)
    finally:
        engine.dispose()
    return SchemaState(library, url, found, installed_revisions(library))


def database_urls(optuna_url: str, mlflow_uri: str) -> dict[str, str]:
    """``{library: SQLAlchemy URL}`` of the store's databases (not a tracking server)."""
    urls = {"optuna": optuna_url}
    if mlflow_uri.startswith(("sqlite:", "postgresql")):
        urls["mlflow"] = mlflow_uri
    return urls
