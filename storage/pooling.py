"""Connections to a PostgreSQL store are opened per operation and closed after it.

A worker talks to the store in short bursts (ask, tell, a heartbeat, a batch of metrics) and
then trains for seconds to hours. Pooled connections sat idle through all of it: about nine
per worker across Optuna's engines, MLflow's in the worker and in its tracking writer, and
ours, so a default server (``max_connections = 100``) filled at about nine workers. Now the
two engines that are used all the time keep one connection each: the worker's Optuna storage
(asks, tells, heartbeats, bulk trials; a thread that finds it busy opens one more for its
operation) and the tracking writer's direct writers (one thing at a time, so that engine never
opens a second). Every other engine connects per operation, and the sweep's lock is held on
the Optuna engine's connection (docs/coordination.md#connection-budget). SQLite stores keep
SQLAlchemy's defaults. ``ONECYCLE_PG_POOLS=1`` keeps SQLAlchemy's and MLflow's default pools
instead: a few milliseconds less per store operation, for a few workers on a distant server.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

#: MLflow's switch for the pool of its SQL store engines.
MLFLOW_POOLCLASS = "MLFLOW_SQLALCHEMYSTORE_POOLCLASS"


#: Set to 1 to keep the libraries' default connection pools on PostgreSQL.
POOLS_ENV = "ONECYCLE_PG_POOLS"
#: Connections a kept engine may open beyond its one during a burst, unless told otherwise.
BURST = 4
#: Seconds a thread waits for a kept engine's connection when the engine opens no more.
POOL_WAIT_S = 60


def pool_kwargs(url: str, kept: bool = False, overflow: int = BURST) -> dict[str, Any]:
    """Engine keywords for ``url`` on PostgreSQL: one connection ``kept``, or none; else {}.

    ``overflow``: how many more a kept engine may open while its one is busy; with 0 the
    process's threads take turns on it (a worker's asks, heartbeats and stale checks are short).
    """
    if not url.startswith("postgresql") or os.environ.get(POOLS_ENV) == "1":
        return {}
    if kept:
        return {"pool_size": 1, "max_overflow": overflow, "pool_timeout": POOL_WAIT_S}
    from sqlalchemy.pool import NullPool

    return {"poolclass": NullPool}


def unpooled_mlflow(uri: str, environ: MutableMapping[str, str] | None = None) -> None:
    """Have MLflow's SQL store for ``uri`` open connections per operation (PostgreSQL only).

    Set before MLflow builds its engine; a user's own ``MLFLOW_SQLALCHEMYSTORE_POOLCLASS``
    wins.

    Example:
        >>> env = {}
        >>> unpooled_mlflow("postgresql+psycopg://db/x_mlflow", env)
        >>> env
        {'MLFLOW_SQLALCHEMYSTORE_POOLCLASS': 'NullPool'}
    """
    target = os.environ if environ is None else environ
    if uri.startswith("postgresql") and target.get(POOLS_ENV) != "1":
        target.setdefault(MLFLOW_POOLCLASS, "NullPool")
