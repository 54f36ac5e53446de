"""Reach a database with a bounded wait, retry what is transient, explain what is not.

A connection that is refused or times out is retried a few times with a short backoff (a
server restarting, a container still starting); a refused login, a missing database or a
missing driver is reported at once. Every message names the store with its password
redacted, says what was tried, and what to do. A full disk is never retried: it is reported
at once as "no space left on device" (:mod:`storage.disk_full`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, NoSuchModuleError, OperationalError

from storage.disk_full import FREE_SPACE, is_disk_full, store_full
from storage.errors import StoreConfigError, StoreUnavailable
from storage.pooling import BURST, pool_kwargs
from storage.redact import redact_url, scrub

T = TypeVar("T")

#: Attempts for a transient failure, and the pause before each retry (seconds).
ATTEMPTS = 3
BACKOFF_S = (0.5, 1.0)

_AUTH_MARKERS = (
    "password authentication failed",
    "no password supplied",
    "authentication failed",
    "does not exist",  # role "x" does not exist / database "x" does not exist
    "permission denied",
    "pg_hba.conf",
)


def engine_kwargs(url: str, kept: bool = False, overflow: int = BURST) -> dict[str, Any]:
    """SQLite waits on locks (busy timeout); PostgreSQL keeps one connection or none.

    ``kept``: the engine is used all the time; ``overflow``: see :mod:`storage.pooling`.
    """
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True, **pool_kwargs(url, kept, overflow)}


def engine_for(url: str, kept: bool = False, overflow: int = BURST) -> Engine:
    """An engine with bounded connect time: SQLite waits on locks, PostgreSQL on the network."""
    try:
        return create_engine(url, **engine_kwargs(url, kept, overflow))
    except NoSuchModuleError as error:
        raise StoreConfigError(f"no SQLAlchemy driver for {redact_url(url)}: {error}") from None
    except ModuleNotFoundError as error:
        raise StoreConfigError(
            f"the driver for {redact_url(url)} is not installed ({error.name}); "
            "for PostgreSQL run: pip install 'onecycle-sweeps[postgres]'"
        ) from None


def is_transient(error: BaseException) -> bool:
    """Whether retrying may help: refused or timed-out connections, not bad credentials."""
    message = str(error).lower()
    return not any(marker in message for marker in _AUTH_MARKERS) and not is_disk_full(error)


def with_retries(what: str, url: str, action: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Run ``action``; retry transient database errors; raise :class:`StoreUnavailable`."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except (OperationalError, DBAPIError) as error:
            if is_disk_full(error):
                raise store_full(what, url, error, FREE_SPACE) from None
            detail = scrub(str(error.orig or error).strip().splitlines()[0], url)
            if not is_transient(error) or attempt == attempts:
                raise StoreUnavailable(_explain(what, url, detail, attempt)) from None
            time.sleep(BACKOFF_S[min(attempt - 1, len(BACKOFF_S) - 1)])
    raise AssertionError("unreachable")  # pragma: no cover


def _explain(what: str, url: str, detail: str, attempts: int) -> str:
    low = detail.lower()
    if "password" in low or "authentication" in low or "role" in low:
        advice = "check the user and password (in the URL, PGPASSWORD, or ~/.pgpass)"
    elif "database" in low and "does not exist" in low:
        advice = "create the database or let the store create it (give the server URL)"
    elif "permission denied" in low:
        advice = "grant the user CREATEDB, or create the databases beforehand"
    else:
        advice = "check that the server is running and reachable from this machine"
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
    return f"cannot {what} at {redact_url(url)} ({tries}): {detail}; {advice}"


def ping(url: str, attempts: int = ATTEMPTS) -> str:
    """Connect once and return the server version, or raise :class:`StoreUnavailable`."""
    engine = engine_for(url)

    def probe() -> str:
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                return str(connection.execute(text("select sqlite_version()")).scalar())
            return str(connection.execute(text("show server_version")).scalar())

    try:
        return with_retries("connect", url, probe, attempts)
    finally:
        engine.dispose()
