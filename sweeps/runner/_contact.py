"""Whether this worker has reached the store without a gap, before it judges others as dead.

While the database, or the storage proxy in front of it, is away, every worker's heartbeats stop
at once. The first stale-trial check after it comes back would find the other workers' last
beats old and fail their live trials. So another worker's trial is failed as stale (or lost)
only after this process has reached the store, without a round trip stuck or failing for over
one heartbeat interval, for a whole stale-trial grace: by then a live worker has beaten again.
See ``docs/deployment.md`` (Faults).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from optuna.exceptions import StorageInternalError
from sqlalchemy.exc import InterfaceError, OperationalError

from storage.errors import StoreUnavailable

#: What a store that is away raises: a database's connection errors, Optuna's wrapper of them,
#: a socket's, and ``StoreUnavailable``, which a storage proxy's client raises when the proxy or
#: the database behind it is away; a bare ``grpc.RpcError`` is matched by name, so that gRPC is
#: not imported where no proxy is used.
OUTAGES: tuple[type[BaseException], ...] = (
    StoreUnavailable,
    OperationalError,
    InterfaceError,
    StorageInternalError,
    ConnectionError,
    TimeoutError,
)


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` says the store is away (not that a call was wrong)."""
    if isinstance(error, OUTAGES):
        return True
    return any(kind.__name__ in ("RpcError", "_InactiveRpcError") for kind in type(error).__mro__)


class StoreContact:
    """Round trips to the store, timed: an outage is one stuck or failing for over ``interval``.

    Outages are recorded only while a sweep is watched (``interval`` set); one recorded still
    holds checks back for its grace after ``unwatch``, so that the sweep's last check, run as
    it ends, does not take the outage it just sat through for the others' deaths.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval: float | None = None
        self.grace: float = 0.0
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight: dict[int, float] = {}
        self._failing_since: float | None = None
        self._outage_ended: float | None = None
        self._next = 0

    def watch(self, interval: float, grace: float) -> None:
        """Start judging outages by ``interval`` (a heartbeat's) and ``grace`` (stale-after)."""
        with self._lock:
            self.interval, self.grace = interval, grace
            self._in_flight.clear()
            self._failing_since = self._outage_ended = None

    def unwatch(self) -> None:
        """No sweep runs in this process any more: checks are not held back."""
        with self._lock:
            self.interval = None

    @contextlib.contextmanager
    def round_trip(self) -> Iterator[None]:
        """Time one call to the store (a heartbeat, a ping before a stale-trial check)."""
        with self._lock:
            key, self._next = self._next, self._next + 1
            started = self._in_flight[key] = self._clock()
        try:
            yield
        except BaseException as error:
            with self._lock:
                self._in_flight.pop(key, None)
                watched = self.interval is not None
                if watched and self._failing_since is None and is_outage(error):
                    self._failing_since = started
            raise
        with self._lock:
            self._in_flight.pop(key, None)
            now = self._clock()
            if self._failing_since is not None or self._too_long(now - started):
                self._failing_since, self._outage_ended = None, now

    def may_judge_others(self) -> bool:
        """Whether the store was reached without an outage for the last stale-trial grace."""
        with self._lock:
            now = self._clock()
            stuck = any(self._too_long(now - started) for started in self._in_flight.values())
            if stuck or self._failing_since is not None:
                return False
            return self._outage_ended is None or now - self._outage_ended >= self.grace

    def _too_long(self, seconds: float) -> bool:
        return self.interval is not None and seconds > self.interval


#: This process's contact with its sweep's store (one sweep runs per worker process).
CONTACT = StoreContact()
