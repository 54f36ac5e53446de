"""Throw-away PostgreSQL stores dropped beside the tests, not in their teardown.

PostgreSQL 15 runs an immediate checkpoint for every ``DROP DATABASE`` and waits for it; with
the suite writing to the server from several processes, each took 1 to 5 s of fsyncs, so a test
that made two stores waited up to 20 s in its teardown for nothing it checks. Each pytest
process drops its tests' databases on one thread of its own instead, and waits for the last of
them when its session ends (a session fixture, so after every module's fixtures); a drop that
fails, or is still running after ``WAIT_S``, is an error of that process's last test.
"""

from __future__ import annotations

import queue
import threading

from storage.postgres import drop_databases
from storage.redact import scrub

#: How long a session's end waits for its drops before it says they hang.
WAIT_S = 300.0

_pending: queue.Queue[tuple[str, str] | None] = queue.Queue()
_failures: list[str] = []
_started: list[threading.Thread] = []
_start_lock = threading.Lock()


def drop_later(server: str, prefix: str) -> None:
    """Drop the store ``prefix``'s databases from ``server`` soon, on this process's dropper."""
    with _start_lock:
        if not _started:
            thread = threading.Thread(target=_drop_each, name="later-drops", daemon=True)
            thread.start()
            _started.append(thread)
    _pending.put((server, prefix))


def wait_for_drops() -> list[str]:
    """Wait until every database handed over so far is dropped; the drops that failed."""
    with _start_lock:
        if _started:
            _pending.put(None)
            thread = _started.pop()
            thread.join(WAIT_S)
            if thread.is_alive():
                _failures.append(f"drops still running after {WAIT_S:.0f} s")
    return list(_failures)


def _drop_each() -> None:
    while (item := _pending.get()) is not None:
        server, prefix = item
        try:
            drop_databases(server, prefix)
        except Exception as error:  # reported when the session ends, password as ***
            first_line = scrub(str(error), server).split("\n", 1)[0]
            _failures.append(f"{prefix}: {type(error).__name__}: {first_line}")
