"""Kind 6 of the failure paths: a disk that fills while a store is created, or mid-sweep.

Real full disks, no mocks: a small tmpfs mounted for the test holds a directory store (or a
PostgreSQL tablespace). A fresh directory store peaks at about 4.5 MB while MLflow's migrations
run (its WAL) and settles at about 1.1 MB; a fresh PostgreSQL store needs about 2 MB in its
tablespace (1.7 MB of it MLflow's). So 64 KB fails at the first write and 1.2 MB (1 MB for
PostgreSQL) in the middle of MLflow's migrations, which is where a half-made schema used to be
left behind ("index ... already exists" at every later open, even on a disk with room).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import ProgrammingError

from storage import StoreSpec, SweepRecord, open_store, resolve_store
from storage.postgres import drop_databases
from storage.run_statuses import _from_search, run_statuses
from storage.store_creation import MARKER, forget_mlflow_engines
from sweeps.cli import main
from sweeps.runner._agreement import REPAIRED_TAG, make_runs_agree
from sweeps.tracking import FAILURE_TAG, PRUNED_TAG, STATE_TAG
from tests.failures_tests.store_state import state_of, store_args, store_exists, sweep_file
from tests.fixtures import unique_prefix
from tests.requirements import postgres_url

SWEEP = """name: {name}
workload: {{entrypoint: 'tests.failures_tests.user_code:{entrypoint}', epochs: 1,
  options: {{ballast: '{ballast}', marker: '{marker}'}}}}
objective: {{metric: val_accuracy}}
search: {{n_trials: {n_trials}, sampler: random, space: {{cycle_max_lr: {{low: 0.01, high: 0.1}},
  cycle_min_lr: 0.001, cycle_first_step_size: 2}}}}
"""

SmallDisk = Callable[..., Path]


def _sweep(
    tmp_path: Path, name: str = "full", entrypoint: str = "steady", **fields: object
) -> Path:
    values = {"ballast": "", "marker": "", "n_trials": 1, **fields}
    return sweep_file(tmp_path, SWEEP.format(name=name, entrypoint=entrypoint, **values))


def _mount(where: Path, size: str, owner: str = "") -> None:
    """Mount a tmpfs of ``size`` at ``where``; skip when this machine does not let us."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a real full disk) needs root")
    options = f"size={size},mode=0700{owner}"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")


def _resize(where: Path, size: str) -> None:
    """Give the disk room: as freeing space, or moving the store to a bigger disk, would."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """``small_disk(size)``: a directory on a tmpfs of that size, unmounted after the test."""
    mounts: list[Path] = []

    def make(size: str, owner: str = "", parent: Path | None = None) -> Path:
        where = Path(parent or tmp_path) / f"disk-{len(mounts)}"
        where.mkdir()
        _mount(where, size, owner)
        mounts.append(where)
        return where

    yield make
    for where in reversed(mounts):
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


def _usable(spec: StoreSpec) -> None:
    """The store opens, and Optuna and MLflow both write to it."""
    with open_store(spec) as store:
        optuna.create_study(study_name="check", storage=store.optuna_storage)
        store.mlflow.create_experiment("check")
        assert store.sweeps.list() == []


@pytest.mark.parametrize(
    ("size", "inside"),
    [("64k", False), ("1200k", True)],
    ids=["at the first write, new directory", "mid-migration, the disk itself"],
)
def test_a_full_disk_while_creating_a_store_leaves_nothing_and_says_so(
    size: str,
    inside: bool,
    small_disk: SmallDisk,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    disk = small_disk(size)
    (disk / "notes.txt").write_text("the user's own file")
    store = disk if inside else disk / "store"
    spec = resolve_store(str(store), env={})
    path = _sweep(tmp_path)
    assert main(["run", str(path), *store_args(spec)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"onecycle: error: no space left on device: cannot create the store at {store} ("
    )
    assert err.count("\n") == 1 and "already exists" not in err
    assert err.rstrip().endswith("nothing of the new store was kept: free space and run again")
    assert sorted(p.name for p in disk.iterdir()) == ["notes.txt"]  # what was there, only

    _resize(disk, "16m")
    _usable(spec)


def test_a_store_whose_creation_was_killed_is_created_again_on_the_next_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = resolve_store(str(tmp_path / "store"), env={})
    opening = (
        f"import storage; storage.open_store(storage.resolve_store({str(tmp_path / 'store')!r}))"
    )
    # MLflow's migrations, not the schema copy (storage/schema_template.py), which is done in
    # milliseconds once a copy is kept and could not be killed half-way.
    creator = subprocess.Popen(
        [sys.executable, "-c", opening],
        stderr=subprocess.DEVNULL,
        env={**os.environ, "ONECYCLE_SCHEMA_CACHE": "0"},
    )
    marker, wal = tmp_path / "store" / MARKER, tmp_path / "store" / "mlflow.db-wal"
    deadline = time.monotonic() + 60
    while creator.poll() is None and time.monotonic() < deadline:
        if marker.exists() and wal.exists() and wal.stat().st_size > 200_000:
            break  # MLflow's migrations are under way
        time.sleep(0.005)
    creator.send_signal(signal.SIGKILL)  # no cleanup can run
    assert creator.wait() == -signal.SIGKILL, "the creation ended before it could be killed"
    with closing(sqlite3.connect(tmp_path / "store" / "mlflow.db")) as half:
        assert half.execute("select count(*) from sqlite_master").fetchone()[0] > 0  # half made
    assert marker.exists()

    _usable(spec)
    assert not marker.exists()
    assert "mlflow.db: its creation did not finish" in caplog.text


@pytest.fixture
def full_tablespace_role(small_disk: SmallDisk) -> Iterator[tuple[str, Path]]:
    """A PostgreSQL login whose tables go to a tablespace on a 1 MB tmpfs: (server URL, disk).

    The tablespace is the server's own full disk; it works only where the server runs on this
    machine (it must reach the tmpfs) as the ``postgres`` user.
    """
    import pwd

    server = make_url(postgres_url())
    admin = create_engine(
        server.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        data = str(connection.execute(text("show data_directory")).scalar())
    if not Path(data).is_dir():
        pytest.skip(f"the PostgreSQL server does not run on this machine ({data} is not here)")
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no `postgres` user on this machine to own the tablespace's directory")
    disk = small_disk("1m", f",uid={owner.pw_uid},gid={owner.pw_gid}", parent=Path("/tmp"))
    name = f"ocs_full_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        try:
            connection.execute(text(f"create tablespace {name} location '{disk}'"))
        except ProgrammingError as error:  # not a superuser
            pytest.skip(f"cannot create a tablespace as {server.username}: {error.orig}")
        connection.execute(text(f"create role {name} login createdb"))
        connection.execute(text(f"grant create on tablespace {name} to {name}"))
        connection.execute(text(f"alter role {name} set default_tablespace = '{name}'"))
    try:
        yield server.set(username=name, password="s3cret").render_as_string(False), disk
    finally:
        with admin.connect() as connection:
            # Whatever the role made lives on the tmpfs, which goes when the test ends: dropped
            # now, or the server's next checkpoint finds its files gone and stops the server.
            owned = connection.execute(
                text(
                    "select datname from pg_database where datdba = (select oid from pg_roles where rolname = :name)"
                ),
                {"name": name},
            ).scalars()
            for database in list(owned):
                connection.execute(text(f'drop database if exists "{database}" with (force)'))
            connection.execute(text(f"drop tablespace if exists {name}"))
            connection.execute(text(f"drop role if exists {name}"))
        admin.dispose()


def test_a_full_tablespace_while_creating_a_postgresql_store_drops_what_it_made(
    full_tablespace_role: tuple[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, disk = full_tablespace_role
    prefix = unique_prefix("full")
    spec = resolve_store(server, db_prefix=prefix, env={})
    path = _sweep(tmp_path)
    try:
        assert main(["run", str(path), *store_args(spec)]) == 1
        err = capsys.readouterr().err
        redacted = server.replace(":s3cret@", ":***@")
        assert err.startswith(
            f"onecycle: error: no space left on device: cannot create the store at {redacted} ("
        )
        assert "No space left on device" in err and "s3cret" not in err
        assert err.count("\n") == 1 and "already exists" not in err
        assert not store_exists(spec)  # both databases dropped

        _resize(disk, "16m")
        _usable(spec)
    finally:
        drop_databases(server, prefix)  # now: its files are on the tmpfs (see the fixture)


@pytest.fixture
def disk(small_disk: SmallDisk, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 16 MB disk for a sweep to fill, and 1 s heartbeats so the stale grace passes soon."""
    monkeypatch.setenv("ONECYCLE_HEARTBEAT_S", "1")
    return small_disk("16m")


@pytest.mark.slow
def test_a_disk_that_fills_mid_sweep_stops_it_at_once_and_the_resume_makes_them_agree(
    disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = resolve_store(str(disk / "store"), env={})
    path = _sweep(
        tmp_path, entrypoint="fills_the_disk_once", ballast=disk / "ballast", marker=tmp_path / "m"
    )
    assert main(["run", str(path), *store_args(spec)]) == 1
    # Counted from the ballast's last write (the disk filling), not from the start.
    stopped_after = time.time() - (disk / "ballast").stat().st_mtime
    err = capsys.readouterr().err
    assert err.startswith(
        f"onecycle: error: no space left on device: cannot record sweep 'full' at {disk / 'store'} ("
    )
    assert err.count("\n") == 1 and "database or disk is full" in err

    (disk / "ballast").unlink()  # free space
    left = state_of(spec, "full")
    assert left.trials == ["RUNNING"] and left.runs in (["RUNNING"], ["FAILED"])
    time.sleep(2.5)  # past the stale-trial grace of 1 s heartbeats
    started = time.monotonic()
    assert main(["run", str(path), *store_args(spec)]) == 0
    resumed_in = time.monotonic() - started
    # No minutes of retrying a disk that stays full (MLflow alone would retry for minutes).
    # Loose on purpose: the tracking writer runs at a lower CPU priority, and on a CI machine
    # whose cores other tests keep busy its MLflow import and its last writes took 50 s of the
    # failed run's wait (a 30 s bound failed there), while the resume took 20 s.
    assert stopped_after < max(90.0, 2 * resumed_in), (stopped_after, resumed_in)
    state = state_of(spec, "full")
    assert (state.status, state.parent) == ("finished", "FINISHED")
    assert (state.trials, state.runs) == (["FAIL", "COMPLETE"], ["FAILED", "FINISHED"])


@pytest.mark.slow
def test_a_trial_complete_in_optuna_whose_run_could_not_end_is_repaired_on_resume(
    disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mlflow_uri = f"sqlite:///{disk / 'mlflow.db'}"  # MLflow on the small disk, Optuna not
    spec = resolve_store(str(tmp_path / "store"), mlflow_uri=mlflow_uri, env={})
    # Made beforehand and closed, as by an earlier sweep: MLflow's write-ahead log starts
    # empty, so the end of the trial's run needs new space on the disk.
    open_store(spec).close()
    forget_mlflow_engines(mlflow_uri)
    path = _sweep(
        tmp_path, entrypoint="fills_the_disk_once", ballast=disk / "ballast", marker=tmp_path / "m"
    )
    flags = [*store_args(spec), "--mlflow-uri", mlflow_uri]
    capsys.readouterr()  # what making the store printed before the CLI quieted MLflow
    assert main(["run", str(path), *flags]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"onecycle: error: no space left on device: cannot record sweep 'full' at {mlflow_uri} ("
    )
    assert err.count("\n") == 1

    (disk / "ballast").unlink()
    left = state_of(spec, "full")
    assert left.trials == ["COMPLETE"] and left.runs in (["RUNNING"], ["FAILED"])  # apart
    time.sleep(2.5)  # a RUNNING run is left to its writer for the stale-trial grace
    assert main(["run", str(path), *flags]) == 0
    state = state_of(spec, "full")
    assert (state.trials, state.runs, state.parent) == (["COMPLETE"], ["FINISHED"], "FINISHED")
    with open_store(spec) as store:
        record = store.sweeps.get("full")
        trial = optuna.load_study(study_name="full", storage=store.optuna_storage).trials[0]
        run = store.mlflow.get_run(str(trial.user_attrs["mlflow_run_id"]))
        assert run.data.tags[STATE_TAG] == "COMPLETE" and FAILURE_TAG not in run.data.tags
        assert run.data.tags[REPAIRED_TAG].startswith(f"the run was {left.runs[0]}; its trial")
        assert run.data.metrics["objective"] == trial.value == 0.75
        assert record.status == "finished"


def test_every_disagreement_is_ended_as_the_trials_state_says(
    new_spec: Callable[..., StoreSpec],
) -> None:
    """The rule on every pair, on both backends; the pairs are written through the public APIs.

    The two tests above produce their disagreement with a real full disk; the other pairs
    (a pruned trial's run left RUNNING, a failed trial's run FINISHED) are written here with
    ``MlflowClient`` and ``study.add_trial``, as a stopped worker would leave them.
    """
    spec = new_spec()
    with open_store(spec) as store:
        client = store.mlflow
        experiment = client.create_experiment("agree")
        parent = client.create_run(experiment).info.run_id
        study = optuna.create_study(study_name="agree", storage=store.optuna_storage)
        record = SweepRecord("agree", {}, "running", "agree", experiment, parent)
        cases = [  # (trial state, value, run status left behind, failure tag on the run)
            (TrialState.COMPLETE, 0.5, "FAILED", "the tracking writer was closed"),
            (TrialState.FAIL, None, "FINISHED", None),
            (TrialState.PRUNED, 0.1, "RUNNING", None),
            (TrialState.COMPLETE, 0.25, "FINISHED", None),  # agrees: untouched
        ]
        run_ids = []
        for state, value, status, tag in cases:
            tags = {"mlflow.parentRunId": parent, **({FAILURE_TAG: tag} if tag else {})}
            run_id = client.create_run(experiment, tags=tags).info.run_id
            if status != "RUNNING":
                client.set_terminated(run_id, status)
            attrs = {"mlflow_run_id": run_id, "failure_reason": "diverged: loss 50"}
            study.add_trial(optuna.trial.create_trial(state=state, value=value, user_attrs=attrs))
            run_ids.append(run_id)

        assert make_runs_agree(store, study, record, grace_s=3600) == [0, 1]  # RUNNING: wait
        assert make_runs_agree(store, study, record, grace_s=0) == [2]
        assert make_runs_agree(store, study, record, grace_s=0) == []
        runs = [client.get_run(run_id) for run_id in run_ids]
        assert [run.info.status for run in runs] == ["FINISHED", "FAILED", "KILLED", "FINISHED"]
        complete, failed, pruned, untouched = (run.data for run in runs)
        assert FAILURE_TAG not in complete.tags and complete.metrics["objective"] == 0.5
        assert (
            "(the run's failure reason was: the tracking writer was closed)"
            in (complete.tags[REPAIRED_TAG])
        )
        assert failed.tags[FAILURE_TAG] == "diverged: loss 50"
        assert failed.tags[STATE_TAG] == "FAIL" and pruned.tags[PRUNED_TAG] == "true"
        assert REPAIRED_TAG not in untouched.tags
        by_table = run_statuses(client, spec.mlflow_uri, run_ids)  # one query
        assert by_table == _from_search(client, run_ids, parent)  # a tracking server's way
        assert [by_table[run_id] for run_id in run_ids] == [run.info.status for run in runs]
