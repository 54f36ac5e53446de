"""Peak PostgreSQL connections per application name, sampled from ``pg_stat_activity``.

Each process under test gets its own ``PGAPPNAME`` (libpq's application name, inherited by
children), so the connections of workers, of a proxy or of anything else are told apart
without looking inside them. Used by the proxy tests and ``benchmarks/bench_workers.py``.
"""

from __future__ import annotations

import threading

import psycopg
from sqlalchemy.engine import make_url


class ConnectionPeaks:
    """Samples connections by application name every 50 ms from a thread; ``peaks`` by name."""

    def __init__(self, server: str, names: tuple[str, ...] | list[str]) -> None:
        self.url = make_url(server).set(drivername="postgresql", database="postgres")
        self.peaks = dict.fromkeys(names, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        with psycopg.connect(self.url.render_as_string(hide_password=False)) as connection:
            connection.autocommit = True
            while not self._stop.wait(0.05):
                rows = connection.execute(
                    "select application_name, count(*) from pg_stat_activity "
                    "where application_name = any(%s) group by application_name",
                    (list(self.peaks),),
                ).fetchall()
                for name, count in rows:
                    self.peaks[name] = max(self.peaks[name], int(count))

    def __enter__(self) -> ConnectionPeaks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
