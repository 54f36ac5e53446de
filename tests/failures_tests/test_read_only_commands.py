"""Read-only commands on a ``--store`` that does not exist: "no store at PATH", nothing created.

A typo in ``--store`` (or running from the wrong directory for the default ``./.onecycle``)
used to create a new empty store and report on it as if it were the one meant.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeps.cli import main

COMMANDS = {
    "list": ["list"],
    "status": ["status"],
    "status NAME": ["status", "mine"],
    "best": ["best", "mine"],
    "summary": ["summary", "mine"],
    "store info": ["store", "info"],
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
