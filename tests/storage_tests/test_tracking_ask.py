"""``Tracking.ask`` and ``post``: MLflow work run where the writes happen, in their order.

A worker sends its experiment, parent run and summary work to its tracking writer so that it
never imports MLflow itself (issue #14); these hold the contract that makes that safe: an ask
runs after everything sent before it, its answer comes back to the thread that asked, and a
failure comes back as one line instead of a hang.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from storage import open_store, resolve_store
from storage.errors import StoreUnavailable
from storage.tracking import InlineTracking, ProcessTracking, Tracking

WRITERS: dict[str, Callable[[str], Tracking]] = {
    "inline": InlineTracking,
    "process": ProcessTracking,
}


@pytest.fixture(params=["inline", pytest.param("process", marks=pytest.mark.slow)])
def tracking(request: pytest.FixtureRequest, tmp_path: Path) -> Tracking:
    spec = resolve_store(str(tmp_path / "store"), env={})
    open_store(spec).close()
    made = WRITERS[str(request.param)](spec.mlflow_uri)
    request.addfinalizer(made.close)
    return made


def new_run(client: MlflowClient) -> str:
    """A new experiment's new run (in the writer, via ask)."""
    experiment = client.create_experiment(f"e{time.monotonic_ns()}")
    return str(client.create_run(experiment).info.run_id)


def metric_count(client: MlflowClient, run_id: str, key: str) -> tuple[int, int]:
    """How many values of ``key`` the run holds, and the process that counted them."""
    return len(client.get_metric_history(run_id, key)), os.getpid()


def tag_of(client: MlflowClient, run_id: str, key: str) -> str | None:
    return client.get_run(run_id).data.tags.get(key)


def set_tag(client: MlflowClient, run_id: str, key: str, value: str) -> None:
    client.set_tag(run_id, key, value)


def fails(client: MlflowClient) -> None:
    raise ValueError("no such thing\nsecond line")


def unsendable(client: MlflowClient) -> Any:
    return threading.Lock()


def echo(client: MlflowClient, value: int) -> int:
    time.sleep(0.01)
    return value


def test_an_ask_runs_after_what_was_sent_and_answers_plain_data(tracking: Tracking) -> None:
    run_id = tracking.ask(new_run)
    tracking.adopt_run("r", run_id)
    tracking.log_metrics("r", [("loss", 1.0 / (step + 1), step, step) for step in range(250)])
    count, pid = tracking.ask(metric_count, run_id, "loss")
    assert count == 250  # the held values were written before the ask ran
    assert (pid == os.getpid()) == isinstance(tracking, InlineTracking)
    tracking.end_run("r", "FINISHED")
    tracking.sync().raise_errors()


def test_a_failing_ask_raises_one_line_naming_its_function(tracking: Tracking) -> None:
    with pytest.raises(StoreUnavailable) as raised:
        tracking.ask(fails)
    assert str(raised.value) == "MLflow: fails: no such thing"
    assert tracking.ask(echo, 3) == 3  # the writer goes on


@pytest.mark.slow  # a writer process
def test_an_answer_that_cannot_travel_is_refused_not_waited_for(tmp_path: Path) -> None:
    spec = resolve_store(str(tmp_path / "store"), env={})
    open_store(spec).close()
    with ProcessTracking(spec.mlflow_uri) as tracking:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="cannot be sent back"):
            tracking.ask(unsendable)
        assert time.monotonic() - started < 60
        assert tracking.ask(echo, 5) == 5


def test_a_post_runs_in_order_and_its_failure_comes_at_the_next_sync(tracking: Tracking) -> None:
    run_id = tracking.ask(new_run)
    tracking.post(set_tag, run_id, "onecycle.note", "posted")
    assert tracking.ask(tag_of, run_id, "onecycle.note") == "posted"
    tracking.post(fails)
    report = tracking.sync()
    assert report.errors == {"fails": ["post: no such thing"]}
    with pytest.raises(StoreUnavailable, match="fails: post: no such thing"):
        report.raise_errors()


@pytest.mark.slow  # a writer process
def test_asks_from_many_threads_each_get_their_own_answer(tmp_path: Path) -> None:
    spec = resolve_store(str(tmp_path / "store"), env={})
    open_store(spec).close()
    answers: dict[int, int] = {}
    with ProcessTracking(spec.mlflow_uri) as tracking:

        def ask(value: int) -> None:
            answers[value] = tracking.ask(echo, value)

        threads = [threading.Thread(target=ask, args=(value,)) for value in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert answers == {value: value for value in range(12)}


@pytest.mark.slow  # a writer process
def test_a_store_sends_its_mlflow_work_to_its_writer_while_it_is_open(tmp_path: Path) -> None:
    open_store(resolve_store(str(tmp_path / "first"), env={})).close()  # the schema copy is kept
    spec = resolve_store(str(tmp_path / "store"), env={})
    with open_store(spec) as store:
        assert "mlflow" not in store.__dict__  # a new store's copied schema needed no client
        tracking = ProcessTracking(spec.mlflow_uri)
        store.mlflow_via = tracking
        run_id = store.mlflow_call(new_run)
        assert store.mlflow_call(metric_count, run_id, "x")[1] != os.getpid()
        assert "mlflow" not in store.__dict__
        tracking.close()
        # A closed writer cannot answer: the same call runs here, with the store's own client.
        assert store.mlflow_call(metric_count, run_id, "x")[1] == os.getpid()


def loaded(client: MlflowClient, module: str) -> bool:
    import sys

    return module in sys.modules


@pytest.mark.slow  # a writer process
def test_the_writer_loads_the_plots_library_once_its_owner_trains(tmp_path: Path) -> None:
    spec = resolve_store(str(tmp_path / "store"), env={})
    open_store(spec).close()
    with ProcessTracking(spec.mlflow_uri) as tracking:
        time.sleep(1.0)  # quiet, but no run yet: its owner may be about to ask for one
        assert not tracking.ask(loaded, "matplotlib.pyplot")
        tracking.adopt_run("r", tracking.ask(new_run))
        deadline = time.monotonic() + 60
        while not tracking.ask(loaded, "matplotlib.pyplot"):
            assert time.monotonic() < deadline, "matplotlib was never loaded ahead of need"
            time.sleep(0.5)
        tracking.end_run("r", "FINISHED")
