"""The Alembic revisions of Optuna's and MLflow's schemas our direct SQL is known to be right on.

A column check cannot see a changed constraint, value encoding, numbering rule or a table that
the library now fills on every write; a schema revision names all of them at once. CI runs the
storage contract tests (the bulk path against the library's API) on the oldest and the newest
library versions ``pyproject.toml`` allows, and the revisions those versions create are listed
here. A store at any other revision is written through the libraries' APIs: slower, never wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import Engine, text

from storage.redact import redact_url

log = logging.getLogger(__name__)

#: Per library, the schema revisions the storage contract tests pass on, with the releases that
#: create them. Add one only after those tests pass against it (docs/storage.md#bulk-writes).
KNOWN_REVISIONS: Mapping[str, Mapping[str, str]] = {
    "optuna": {"v3.2.0.a": "Optuna 4.9.0 to 5.1.0"},
    "mlflow": {
        "d3e4f5a6b7c8": "MLflow 3.9.0",
        "dc11669786a5": "MLflow 3.17.0 to 3.17.2",
    },
}
LIBRARIES = tuple(KNOWN_REVISIONS)
_said: set[tuple[str, str | None]] = set()


def schema_revision(engine: Engine) -> str | None:
    """The revision ``engine``'s database is stamped with; None without exactly one stamp."""
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except Exception:  # no such table, no permission: no revision we could trust
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


def revision_known(engine: Engine, library: str) -> bool:
    """Whether ``library``'s schema in ``engine`` is at a revision on the allowlist.

    When it is not, one log line (once per library and revision in a process) says why the
    library's API is used instead.
    """
    if library not in KNOWN_REVISIONS:
        raise ValueError(f"library: must be one of {', '.join(LIBRARIES)}, got {library!r}")
    revision = schema_revision(engine)
    if revision in KNOWN_REVISIONS[library]:
        return True
    if (library, revision) not in _said:
        _said.add((library, revision))
        where = redact_url(engine.url.render_as_string(hide_password=False))
        log.warning(
            "writing %s's tables through its API, not in bulk: %s is at schema revision %s, "
            "which these writers were not tested against (known: %s)",
            library,
            where,
            revision or "(none)",
            ", ".join(sorted(KNOWN_REVISIONS[library])),
        )
    return False
