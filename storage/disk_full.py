"""Tell a full disk from other storage failures, whichever library the error comes through.

A full disk reaches us in many shapes: SQLite's "database or disk is full" (wrapped by
SQLAlchemy, then by MLflow or Optuna, whose own message may hide it), an ``OSError`` with
``ENOSPC``, PostgreSQL's SQLSTATE 53100 ("could not extend file ...: No space left on device")
on a full tablespace. All of them mean the same thing to the person at the terminal, who is
told "no space left on device" instead of a retry count or a migration's "index ... already
exists", and none of them is worth retrying: the disk stays full until someone frees space.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

from storage.errors import StoreFull
from storage.redact import redact_url, scrub
from storage.spec import StoreSpec

NO_SPACE = "no space left on device"
#: What to do about a full disk, where nothing more specific is known.
FREE_SPACE = "free space on the disk (or PostgreSQL tablespace) that holds it and run again"
_MARKERS = (NO_SPACE, "database or disk is full", "disk quota exceeded", "could not extend file")
#: SQLite says "disk I/O error" when it cannot grow a WAL index in a full tmpfs; with less free
#: space than this where the store lives, that is taken for a full disk.
LOW_SPACE_BYTES = 1 << 20


def is_disk_full(error: BaseException, where: Path | None = None) -> bool:
    """Whether ``error`` (or anything it wraps) says the disk is full.

    ``where`` (a directory of the store) lets an unspecific "disk I/O error" count when the
    disk there has next to no space left.
    """
    io_error = False
    for found in _chain(error):
        if isinstance(found, OSError) and found.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        code = getattr(found, "sqlite_errorcode", None)
        if isinstance(found, sqlite3.Error) and code is not None and code & 0xFF == 13:
            return True  # SQLITE_FULL
        if getattr(found, "sqlstate", None) == "53100":  # PostgreSQL's disk_full
            return True
        text = str(found).lower()
        if any(marker in text for marker in _MARKERS):
            return True
        io_error = io_error or "disk i/o error" in text
    return io_error and where is not None and _free_bytes(where) < LOW_SPACE_BYTES


def store_full(what: str, store: str, error: BaseException, consequence: str) -> StoreFull:
    """The one-line error for a full disk: what failed, where, the cause, what it left.

    ``store`` is the store's setting or URL (its password is redacted here), ``consequence``
    what the store holds now and how to go on.
    """
    detail = _detail(error, store)
    return StoreFull(
        f"{NO_SPACE}: cannot {what} at {redact_url(store)} ({detail}); {consequence}", detail
    )


def full_part(spec: StoreSpec, error: BaseException) -> str:
    """What to name as full: the store's setting, or the part that failed when they are apart.

    A directory store holding both databases is named by its directory; with ``--mlflow-uri``
    or ``--optuna-storage`` elsewhere, the one whose write failed (the tracking writer's errors
    say "MLflow").
    """
    inside = spec.directory is not None and all(
        url.startswith("sqlite") and spec.directory in Path(url.split(":///", 1)[-1]).parents
        for url in (spec.optuna_url, spec.mlflow_uri)
    )
    if inside:
        return spec.setting
    return spec.mlflow_uri if "mlflow" in str(error).lower() else spec.optuna_url


def _detail(error: BaseException, store: str) -> str:
    """The most specific line of the error chain (a driver's message over a wrapper's)."""
    if isinstance(error, StoreFull) and error.detail:
        return error.detail
    lines = [str(found).strip().splitlines()[0] for found in _chain(error) if str(found).strip()]
    for line in lines:
        if any(marker in line.lower() for marker in _MARKERS):
            return scrub(line, store)[:300]
    return scrub(lines[-1] if lines else type(error).__name__, store)[:300]


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and what it wraps: SQLAlchemy's ``orig``, causes and contexts (no cycles)."""
    found: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending and len(found) < 20:
        current = pending.pop(0)
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        orig = getattr(current, "orig", None)
        wrapped = orig if isinstance(orig, BaseException) else None
        pending.extend([wrapped, current.__cause__, current.__context__])
    return found


def _free_bytes(where: Path) -> int:
    for candidate in (where, *where.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return LOW_SPACE_BYTES  # nowhere to look: not low
