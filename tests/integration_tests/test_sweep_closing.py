"""The end of a sweep with several workers: its summary written once, a failing worker named."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from storage import StoreSpec, open_store
from sweeps.cli import main
from sweeps.runner import close_parent, create_or_resume, load_config, run_sweep
from tests.conftest import store_args
from tests.integration_tests.test_many_workers import tiny_sweep

pytestmark = pytest.mark.slow  # worker processes and whole sweeps; see pyproject's markers

NewSpec = Callable[..., StoreSpec]


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_workers_closing_one_sweep_at_once_write_its_summary_once(
    new_spec: NewSpec, backend: str, tmp_path: Path
) -> None:
    """Four workers finish together and each closes the parent run: nothing raises, and the
    summary (best value, counts, DeepSpeed config) is written by one of them."""
    spec = new_spec(artifacts=str(tmp_path / "artifacts"))
    path = tiny_sweep(tmp_path, "closing", n_trials=3)
    with open_store(spec) as store:
        record, _ = create_or_resume(store, load_config(path))
        run_sweep(store, record)
        parent = record.mlflow_parent_run_id
        client = store.mlflow
        for key in ("onecycle.summary", "onecycle.trials"):
            client.delete_tag(parent, key)
        client.update_run(parent, "RUNNING")
        history_before = len(client.get_metric_history(parent, "best_value"))
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def close() -> None:
        try:
            with open_store(spec) as store:
                study = optuna.load_study(study_name="closing", storage=store.optuna_storage)
                barrier.wait()
                close_parent(store, store.sweeps.get("closing"), study)
        except BaseException as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with open_store(spec) as store:
        history = store.mlflow.get_metric_history(parent, "best_value")
        assert len(history) == history_before + 1
        parent_run = store.mlflow.get_run(parent)
        assert parent_run.info.status == "FINISHED"
        assert parent_run.data.tags["onecycle.summary"] == '{"finished": 3}'
        assert '"complete": 3' in parent_run.data.tags["onecycle.trials"]
        artifacts = [a.path for a in store.mlflow.list_artifacts(parent)]
        assert artifacts.count("best_deepspeed_config.json") == 1


def test_a_failing_worker_is_one_line_naming_it_and_its_reason(
    new_spec: NewSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    spec = new_spec(artifacts=str(tmp_path / "artifacts"))
    path = tiny_sweep(tmp_path, "broken-workers", n_trials=3)
    monkeypatch.setenv("ONECYCLE_HEARTBEAT_S", "soon")  # read by each worker, refused there
    assert main(["run", str(path), "--workers", "2", *store_args(spec)]) == 1
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if "failed (exit" in line]
    assert len(lines) == 2, captured
    for index, line in enumerate(sorted(lines)):
        assert re.fullmatch(
            rf"worker {index} \(pid \d+\) failed \(exit code 2\): ONECYCLE_HEARTBEAT_S must be "
            r"a whole number of seconds, got 'soon'",
            line.strip(),
        ), line
    assert "onecycle: error: 2 of 2 workers failed" in captured.err
