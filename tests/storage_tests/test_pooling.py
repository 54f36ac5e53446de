"""Which engines keep a PostgreSQL connection, and the switch that restores default pools."""

from __future__ import annotations

import pytest
from sqlalchemy.pool import NullPool, QueuePool

from storage.connect import engine_for
from storage.pooling import MLFLOW_POOLCLASS, POOLS_ENV, unpooled_mlflow

PG = "postgresql+psycopg://nobody@127.0.0.1:1/x"  # engines connect lazily: nothing is reached


def test_postgresql_engines_keep_one_connection_or_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POOLS_ENV, raising=False)
    kept, unkept = engine_for(PG, kept=True), engine_for(PG)
    assert isinstance(kept.pool, QueuePool) and kept.pool.size() == 1
    assert isinstance(unkept.pool, NullPool)
    assert kept.pool.overflow() == -1  # up to BURST more while the kept one is busy
    single = engine_for(PG, kept=True, overflow=0)  # threads take turns on the one
    assert isinstance(single.pool, QueuePool) and single.pool._max_overflow == 0
    assert not isinstance(engine_for("sqlite:///:memory:").pool, NullPool)
    env: dict[str, str] = {}
    unpooled_mlflow(PG, env)
    assert env == {MLFLOW_POOLCLASS: "NullPool"}
    unpooled_mlflow("sqlite:////tmp/mlflow.db", env := {})
    assert env == {}
    unpooled_mlflow(PG, env := {MLFLOW_POOLCLASS: "QueuePool"})  # the user's own setting wins
    assert env == {MLFLOW_POOLCLASS: "QueuePool"}


def test_the_switch_restores_default_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(POOLS_ENV, "1")
    engine = engine_for(PG)
    assert isinstance(engine.pool, QueuePool) and engine.pool.size() == 5
    env = {POOLS_ENV: "1"}
    unpooled_mlflow(PG, env)
    assert MLFLOW_POOLCLASS not in env
