"""``onecycle store info``: what a person sees, and the exit codes of a bad or missing store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage import open_store, resolve_store
from sweeps.cli import main
from tests.fixtures import free_port


def test_store_info_on_a_new_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    open_store(resolve_store(str(store), env={})).close()
    assert main(["store", "info", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "optuna" in out and "mlflow" in out and "sweeps: none yet" in out


@pytest.mark.parametrize("made", [False, True], ids=["no-directory", "empty-directory"])
def test_store_info_on_a_missing_store_exits_2_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], made: bool
) -> None:
    store = tmp_path / "typo"
    if made:
        store.mkdir()
    assert main(["store", "info", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"no store at {store} (no optuna.db or mlflow.db there)" in err
    assert store.exists() == made
    assert list(tmp_path.rglob("*.db")) == []


def test_store_info_json_uses_the_environment_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    open_store(resolve_store(str(tmp_path / "env-store"), env={})).close()
    monkeypatch.setenv("ONECYCLE_STORE", str(tmp_path / "env-store"))
    assert main(["store", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["store"] == str(tmp_path / "env-store")
    assert info["optuna"]["backend"] == "sqlite"


def test_bad_scheme_exits_2_and_unreachable_server_exits_1_without_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["store", "info", "--store", "redis://u:topsecret@localhost/"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "topsecret" not in err and "got scheme 'redis'" in err
    port = free_port()
    assert main(["store", "info", "--store", f"postgresql://u:topsecret@127.0.0.1:{port}/"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "topsecret" not in err and "u:***@127.0.0.1" in err
