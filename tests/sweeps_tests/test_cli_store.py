"""``onecycle store info``: what a person sees, and the exit codes of a bad store."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from sweeps.cli import main


def test_store_info_on_a_fresh_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    assert main(["store", "info", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "optuna" in out and "mlflow" in out and "sweeps: none yet" in out
    assert (store / "optuna.db").exists() and (store / "mlflow.db").exists()


def test_store_info_json_uses_the_environment_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
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
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["store", "info", "--store", f"postgresql://u:topsecret@127.0.0.1:{port}/"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "topsecret" not in err and "u:***@127.0.0.1" in err
