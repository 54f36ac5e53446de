"""Fixtures that give each test a fresh store on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from storage import StoreSpec, resolve_store
from tests.fixtures import unique_prefix
from tests.later_drops import drop_later, wait_for_drops
from tests.requirements import postgres_url

# Parallel pytest workers on a small machine make an example's time unpredictable; what the
# property tests check is the values, never how fast one example ran.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


def pytest_configure(config: pytest.Config) -> None:
    """Keep the suite's MLflow schema copies (storage/schema_template.py) out of the home cache."""
    os.environ.setdefault(
        "ONECYCLE_CACHE_DIR", str(Path(tempfile.gettempdir()) / "onecycle-tests-cache")
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Load what nearly every test runs, then freeze it out of the garbage collector.

    Each pytest process runs hundreds of in-process sweeps; its full collections walked torch
    (with the ``torch._dynamo`` and SymPy that its first optimizer loads), MLflow and Optuna
    every time. Frozen, they are skipped: the in-process sweep tests used about 8 % less CPU.
    A short selection (a test or a file) is left alone: the imports would cost it seconds.
    """
    import gc

    if len(session.items) < 50:
        return

    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    import optuna  # noqa: F401
    import torch
    from mlflow import MlflowClient  # noqa: F401

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # loads torch._dynamo
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def _drops_done() -> Iterator[None]:
    """At the session's end, wait for this process's throw-away databases to be dropped
    (tests/later_drops.py): torn down after every module's fixtures, and a failure here is an
    error that reaches the report under xdist too (a worker's own exit status does not)."""
    yield
    failed = wait_for_drops()
    if failed:
        pytest.fail("could not drop test stores: " + "; ".join(failed), pytrace=False)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one pytest worker more than the cores (at most 4), since many tests spend
    their time waiting on processes they started; measured in README's Development section."""
    return min(4, (os.cpu_count() or 1) + 1)


def store_args(spec: StoreSpec) -> list[str]:
    """The CLI flags that name ``spec``'s store."""
    return [
        "--store",
        spec.setting,
        "--db-prefix",
        spec.db_prefix,
        "--artifacts",
        spec.artifact_location,
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_spec(backend: str, tmp_path: Path) -> Iterator[Callable[..., StoreSpec]]:
    """Make specs for fresh stores of this test's backend; PostgreSQL ones are dropped after."""
    prefixes: list[str] = []
    server = postgres_url() if backend == "postgresql" else ""

    def make(**overrides: str) -> StoreSpec:
        if backend == "sqlite":
            return resolve_store(
                str(tmp_path / f"store-{uuid.uuid4().hex[:6]}"), env={}, **overrides
            )
        prefix = unique_prefix()
        prefixes.append(prefix)
        return resolve_store(server, db_prefix=prefix, env={}, **overrides)

    yield make
    for prefix in prefixes:
        drop_later(server, prefix)
