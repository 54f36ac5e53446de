"""Fixed costs (issue #14): what each command imports, starts and prints about its own time.

Wall times are measured by ``benchmarks/bench_overhead.py``, never here; these tests check the
causes instead: which libraries a command imports, that a finished sweep trains nothing and
starts no writer, that a writer started early waits for its store, and that ``--profile``
names the phases.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import open_store, resolve_store
from storage import tracking as tracking_module
from storage.tracking import ProcessTracking, start_writer
from sweeps.cli import COMMANDS
from sweeps.cli._lazy_group import load
from sweeps.cli._store_options import start_writer_early
from tests.fixtures import example_sweep, write_sweep

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "mlflow")


def onecycle(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the CLI as its console script does, with ``-X importtime``; (code, out, err)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sweeps", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=300,
    )
    return done.returncode, done.stdout, done.stderr


def imported(stderr: str) -> set[str]:
    """Top-level packages ``-X importtime`` saw imported."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[-1].strip().split(".")[0])
    return names


def profile_rows(stderr: str) -> dict[str, float]:
    """The ``--profile`` table's rows: phase -> seconds."""
    lines = stderr.splitlines()
    start = lines.index("onecycle profile: wall time by phase")
    rows = {}
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        name, seconds = line.strip().rsplit(" s", 1)[0].rsplit(None, 1)
        rows[name.strip()] = float(seconds)
    return rows


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    """A store holding one finished 2-trial sweep, its file, and the --profile of its run."""
    folder = tmp_path_factory.mktemp("fixed-costs")
    config = example_sweep("digits", name="costs", epochs=1, options={"hidden": [16]})
    config["search"].update(n_trials=2, pruner="none")
    sweep = write_sweep(folder, config)
    code, _, err = onecycle("--profile", "run", str(sweep), "--store", "store", cwd=folder)
    assert code == 0, err[-2000:]
    yield folder, sweep, err


def test_help_lists_every_command_with_its_own_line_and_imports_no_library() -> None:
    for name, entry in COMMANDS.items():
        command = load(entry)
        assert command.name == name
        assert entry.short_help == command.get_short_help_str(limit=200), name
    code, out, err = onecycle("--help", cwd=ROOT)
    assert code == 0
    assert all(name in out for name in COMMANDS)
    assert not imported(err) & {"torch", "mlflow", "optuna", "sqlalchemy", "pydantic"}


@pytest.mark.slow  # a whole sweep, then every read-only command in its own process
def test_read_only_commands_import_neither_torch_nor_mlflow(
    finished: tuple[Path, Path, str],
) -> None:
    folder, _, _ = finished
    for args in (["list"], ["status", "costs"], ["best", "costs"], ["store", "info"]):
        code, out, err = onecycle(*args, "--store", "store", cwd=folder)
        assert code == 0, err[-1000:]
        assert ("OneCycle" if args[0] == "best" else "costs") in out
        assert not imported(err) & set(HEAVY), args
    code, out, err = onecycle("store", "info", "--json", "--store", "store", cwd=folder)
    info = json.loads(out)
    assert info["mlflow"]["experiments"] >= 1  # counted without MLflow's client
    assert info["mlflow"]["mlflow_version"]


@pytest.mark.slow  # a whole sweep
def test_a_finished_sweep_says_so_and_trains_nothing(finished: tuple[Path, Path, str]) -> None:
    folder, sweep, _ = finished
    before = _runs(folder / "store" / "mlflow.db")
    code, out, err = onecycle("--profile", "run", str(sweep), "--store", "store", cwd=folder)
    assert code == 0, err[-1000:]
    assert "is finished (2 of 2 trials): nothing to run" in " ".join(out.split())
    assert "best val_accuracy" in out
    assert not imported(err) & set(HEAVY)
    assert "training" not in profile_rows(err)
    assert _runs(folder / "store" / "mlflow.db") == before  # no run started, none reopened
    changed = write_sweep(
        folder, {**example_sweep("digits", name="costs", epochs=3)}, "changed.yaml"
    )
    code, _, err = onecycle("run", str(changed), "--store", "store", cwd=folder)
    assert code == 2
    assert "already exists in the store with a different config" in err


def _runs(database: Path) -> list[tuple[str, str, int | None]]:
    """Every MLflow run's id, status and end time, read straight from the file."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute(
            "select run_uuid, status, end_time from runs order by run_uuid"
        ).fetchall()


@pytest.mark.slow  # a whole sweep
def test_profile_names_each_phase_of_a_run_and_adds_up_to_the_wall(
    finished: tuple[Path, Path, str],
) -> None:
    _, _, err = finished
    rows = profile_rows(err)
    for phase in (
        "python start",
        "imports",
        "config",
        "workload check",
        "store open",
        "sweep record",
        "sampling",
        "training",
        "tracking flush",
        "summary",
        "other",
        "wall",
    ):
        assert phase in rows, phase
    parts = sum(seconds for name, seconds in rows.items() if name != "wall")
    assert parts == pytest.approx(rows["wall"], abs=0.01)
    assert rows["training"] > 0
    # Optuna, imported after the CLI set its logger's level, still does not log its INFO lines.
    assert not [line for line in err.splitlines() if line.startswith("[I ")]


def test_profile_by_environment_keeps_stdout_the_commands_own(tmp_path: Path) -> None:
    code, out, err = onecycle(
        "schedule",
        str(ROOT / "examples" / "onecycle.json"),
        "--steps",
        "3",
        cwd=tmp_path,
        env={"ONECYCLE_PROFILE": "1"},
    )
    assert code == 0
    assert "onecycle profile" not in out
    assert "wall" in profile_rows(err)
    code, _, err = onecycle("list", "--profile", "--store", "nowhere", cwd=tmp_path)
    assert code == 2  # an error still prints the table, after the one-line error
    assert "no store at" in err and "wall" in profile_rows(err)


def test_a_writer_started_early_waits_for_its_store_and_is_the_one_taken(tmp_path: Path) -> None:
    spec = resolve_store(str(tmp_path / "store"), env={})
    writer = start_writer(spec.mlflow_uri)
    assert start_writer(spec.mlflow_uri) is writer
    time.sleep(1.0)  # long enough to have broken a store being created, had it touched it
    assert not (tmp_path / "store").exists()
    with open_store(spec) as store:
        taken = ProcessTracking.for_uri(spec.mlflow_uri)
        assert taken is writer
        assert ProcessTracking.for_uri(spec.mlflow_uri) is not writer  # taken once only
        taken.store_ready()
        client = store.mlflow
        experiment = client.create_experiment("early")
        run = client.create_run(experiment).info.run_id
        taken.adopt_run("h", run)
        taken.log_metrics("h", [("loss", 0.5, 0, 1), ("loss", 0.25, 1, 2)])
        taken.end_run("h", "FINISHED")
        taken.close().raise_errors()
        assert [m.value for m in client.get_metric_history(run, "loss")] == [0.5, 0.25]
        assert client.get_run(run).info.status == "FINISHED"


def test_a_writer_starts_early_only_where_the_flags_name_its_tracking_uri(tmp_path: Path) -> None:
    """A proxy address names its MLflow server only when asked: no writer for no URI (it was
    one more MLflow import in every worker behind the proxy)."""
    waiting = tracking_module._WAITING
    assert resolve_store("onecycle://127.0.0.1:9", env={}).mlflow_uri == ""
    start_writer_early({"store": "onecycle://127.0.0.1:9"})
    assert "" not in waiting
    spec = resolve_store(str(tmp_path / "store"), env={})
    start_writer_early({"store": str(tmp_path / "store")})
    started = waiting.pop(spec.mlflow_uri)
    started.discard()


def test_a_command_that_fails_before_its_store_leaves_no_writer_behind(tmp_path: Path) -> None:
    """``main`` called from Python: a ``worker`` for a sweep the store lacks fails after its early
    writer started; that writer is stopped as ``main`` returns, not when the process exits."""
    import multiprocessing

    from sweeps.cli import main

    store = str(tmp_path / "store")
    with open_store(resolve_store(store, env={})):
        pass
    before = set(multiprocessing.active_children())
    assert main(["worker", "nope", "--store", store]) == 2
    assert not tracking_module._WAITING
    left = [child for child in multiprocessing.active_children() if child not in before]
    assert not [child.name for child in left if child.is_alive()]


def test_a_writer_nothing_takes_is_stopped_at_exit(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from storage.tracking import start_writer
        writer = start_writer("sqlite:///{tmp_path}/never.db")
        print(writer._process.pid, flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-1000:]
    pid = int(done.stdout.split()[0])
    assert not Path(f"/proc/{pid}").exists() or "zombie" in _state(pid)
    assert not (tmp_path / "never.db").exists()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


def test_the_cli_exit_runs_every_handler_and_keeps_the_code(tmp_path: Path) -> None:
    marker = tmp_path / "handler-ran"
    script = textwrap.dedent(
        f"""
        import atexit, sys
        from sweeps.cli import _leaving
        _leaving.skip_teardown()
        atexit.register(lambda: open({str(marker)!r}, "w").write("yes"))
        sys.stdout.write("unflushed output")
        _leaving.set_code(3)
        sys.exit(3)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": ""},
        timeout=60,
    )
    assert done.returncode == 3
    assert done.stdout == "unflushed output"
    assert marker.read_text() == "yes"


#: Runs the CLI in-process and, at exit, prints the top-level packages this process imported
#: (``-X importtime`` would also show the writer process's, which MLflow's import is for).
MAIN_MODULES = """
import atexit, json, sys
atexit.register(lambda: print("MAIN MODULES " + json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr))
from sweeps.cli import main
main()
"""


def main_modules(*args: str, cwd: Path) -> tuple[int, set[str], str]:
    """Run the CLI with ``args``; its exit code, the main process's packages and stderr."""
    done = subprocess.run(
        [sys.executable, "-c", MAIN_MODULES, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith("MAIN MODULES ")]
    assert lines, done.stderr[-2000:]
    return done.returncode, set(json.loads(lines[-1].removeprefix("MAIN MODULES "))), done.stderr


@pytest.mark.slow  # a sweep, its resume and a tracked train, each in its own process
def test_run_and_train_leave_mlflow_to_the_writer_and_track_everything(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    config = example_sweep("digits", name="writer", epochs=1, options={"hidden": [16]})
    config["search"].update(n_trials=2, pruner="none")
    sweep = write_sweep(tmp_path, config)
    code, modules, err = main_modules("run", str(sweep), "--store", "store", cwd=tmp_path)
    assert code == 0, err[-2000:]
    assert "torch" in modules and "mlflow" not in modules
    config["search"]["n_trials"] = 4  # a resume by two workers: agreement, reopening, 2 more
    write_sweep(tmp_path, config)
    code, modules, err = main_modules(
        "run", str(sweep), "--workers", "2", "--store", "store", cwd=tmp_path
    )
    assert code == 0, err[-2000:]
    assert "mlflow" not in modules
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"cycle_min_lr": 0.003, "cycle_max_lr": 0.03}))
    code, modules, err = main_modules(
        "train", str(sweep), "--params", str(params), "--store", "store", cwd=tmp_path
    )
    assert code == 0, err[-2000:]
    assert "mlflow" not in modules
    # ... and MLflow holds all of it: the sweep's parent FINISHED with its summary, its four
    # trials' runs FINISHED with their metrics, the train's parent and run FINISHED.
    store = open_store(resolve_store(str(tmp_path / "store"), env={}))
    client = MlflowClient(tracking_uri=store.spec.mlflow_uri)
    runs = client.search_runs([store.sweeps.get("writer").mlflow_experiment_id or ""])
    by_role: dict[str, list[str]] = {}
    for run in runs:
        role = run.data.tags.get("onecycle.role") or (
            "trial" if "mlflow.parentRunId" in run.data.tags else "other"
        )
        by_role.setdefault(role, []).append(run.info.status)
        if role == "trial":
            assert client.get_metric_history(run.info.run_id, "lr"), run.info.run_name
    assert by_role["sweep"] == ["FINISHED", "FINISHED"]  # the sweep's and the train's parents
    assert by_role["trial"] == ["FINISHED"] * 5
    sweep_parent = store.sweeps.get("writer").mlflow_parent_run_id or ""
    artifacts = {item.path for item in client.list_artifacts(sweep_parent)}
    assert {"optimization_history.png", "best_deepspeed_config.json"} <= artifacts
    assert json.loads(client.get_run(sweep_parent).data.tags["onecycle.summary"]) == {
        "finished": 4
    }
    store.close()


@pytest.mark.slow  # a range test, then an `auto` sweep's, each in its own process
def test_range_tests_leave_mlflow_to_the_writer_and_are_logged(tmp_path: Path) -> None:
    """``range-test`` and an ``auto`` sweep's range test log their run (and its plot) through
    the tracking writer: the process that trains never imports MLflow for them either."""
    from mlflow import MlflowClient

    config = example_sweep("digits", name="ranged", epochs=1, options={"hidden": [16]})
    config["search"].update(n_trials=1, pruner="none")
    config.pop("enqueue")
    config["range_test"] = {"steps": 60}
    sweep = write_sweep(tmp_path, config)
    code, modules, err = main_modules(
        "range-test", str(sweep), "--steps", "60", "--store", "store", cwd=tmp_path
    )
    assert code == 0, err[-2000:]
    assert "torch" in modules and "mlflow" not in modules
    config["search"]["space"]["cycle_max_lr"] = "auto"
    write_sweep(tmp_path, config)
    code, modules, err = main_modules("run", str(sweep), "--store", "store", cwd=tmp_path)
    assert code == 0, err[-2000:]
    assert "mlflow" not in modules
    store = open_store(resolve_store(str(tmp_path / "store"), env={}))
    client = MlflowClient(tracking_uri=store.spec.mlflow_uri)
    experiment = client.get_experiment_by_name("ranged")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    tests = [r for r in runs if r.data.tags.get("onecycle.role") == "range_test"]
    assert len(tests) == 2  # the command's, and the sweep's
    for run in tests:
        assert run.info.status == "FINISHED"
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "range_test.png" in artifacts
        assert client.get_metric_history(run.info.run_id, "lr")
    store.close()
