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
from sqlalchemy import create_engine, make_url, text

from storage import StoreSpec, open_store, resolve_store
from storage.postgres import drop_databases
from storage.store_creation import MARKER
from sweeps.cli import main
from tests.failures_tests.store_state import store_args, store_exists, sweep_file
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
    creator = subprocess.Popen([sys.executable, "-c", opening], stderr=subprocess.DEVNULL)
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
        connection.execute(text(f"create tablespace {name} location '{disk}'"))
        connection.execute(text(f"create role {name} login createdb"))
        connection.execute(text(f"grant create on tablespace {name} to {name}"))
        connection.execute(text(f"alter role {name} set default_tablespace = '{name}'"))
    try:
        yield server.set(username=name, password="s3cret").render_as_string(False), disk
    finally:
        with admin.connect() as connection:
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
        drop_databases(server, prefix)
