"""Read-only commands on a ``--store`` that does not exist: "no store at PATH", nothing created.

A typo in ``--store`` (or running from the wrong directory for the default ``./.onecycle``)
used to create a new empty store and report on it as if it were the one meant. ``worker``
counts as one: it joins a sweep that ``run`` created, so a store that is not there is a typo.
On PostgreSQL, "there" means its databases (``--db-prefix``) exist on the server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import make_url

from storage import redact_url, resolve_store
from sweeps.cli import main
from tests.failures_tests.store_state import store_args, store_exists
from tests.fixtures import unique_prefix
from tests.later_drops import drop_later
from tests.requirements import postgres_url

COMMANDS = {
    "list": ["list"],
    "status": ["status"],
    "status NAME": ["status", "mine"],
    "best": ["best", "mine"],
    "summary": ["summary", "mine"],
    "store info": ["store", "info"],
    "worker": ["worker", "mine", "--quiet"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("existing_directory", [False, True])
def test_no_store_at_path_and_nothing_created(
    command: str, existing_directory: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "typo"
    if existing_directory:
        store.mkdir()  # e.g. the wrong directory: there, but without a store in it
    assert main([*COMMANDS[command], "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"onecycle: error: no store at {store} ") and err.count("\n") == 1
    assert store.exists() == existing_directory
    assert not existing_directory or not any(store.iterdir())


def test_the_default_store_is_not_created_either(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ONECYCLE_STORE", raising=False)
    assert main(["list"]) == 2
    assert f"no store at {tmp_path / '.onecycle'} " in capsys.readouterr().err
    assert not (tmp_path / ".onecycle").exists()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_no_postgresql_databases_are_created_either(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = make_url(postgres_url()).set(password="s3cret").render_as_string(False)
    spec = resolve_store(server, db_prefix=unique_prefix("typo"), env={})
    try:
        assert main([*COMMANDS[command], *store_args(spec)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"onecycle: error: no store at {redact_url(server)} (")
        assert err.count("\n") == 1 and "s3cret" not in err
        assert not store_exists(spec)
    finally:
        drop_later(server, spec.db_prefix)
