"""A PostgreSQL server of the test's own, for tests that restart or stop the server.

Restarting the shared test server would break every other test using it at that moment (a
second pytest worker, another checkout's run), so such a test starts a throwaway cluster in its
own folder on a free port and restarts that. PostgreSQL refuses to run as root: as root the
cluster belongs to the ``postgres`` user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures import free_port
from tests.requirements import in_ci


def _bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: pg_config's answer, else the newest Debian cluster version."""
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        folder = Path(found.stdout.strip())
        if (folder / "initdb").exists():
            return folder
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@dataclass
class PrivatePostgres:
    """A running cluster: its URL (trust auth, user ``postgres``) and a way to restart it."""

    url: str
    _pg_ctl: list[str]

    def restart(self) -> None:
        subprocess.run([*self._pg_ctl, "restart"], check=True, capture_output=True, timeout=120)


@contextmanager
def private_postgres(folder: Path) -> Iterator[PrivatePostgres]:
    """Start a cluster in ``folder``; stopped and removed on exit. Skips (fails in CI) if the
    PostgreSQL server programs are not installed."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        message = "needs the PostgreSQL server programs (initdb, pg_ctl) for a private server"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    as_user: list[str] = []
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
        folder.chmod(0o755)
        for parent in folder.parents:  # postgres must reach the folder through a root tmp tree
            if parent.stat().st_mode & 0o001 == 0:
                parent.chmod(parent.stat().st_mode | 0o001)
    data, port = folder / "data", free_port()
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-o", options]
    pg_ctl += ["-l", str(folder / "server.log")]
    subprocess.run([*pg_ctl, "start"], check=True, capture_output=True, timeout=120)
    try:
        yield PrivatePostgres(f"postgresql://postgres@127.0.0.1:{port}/postgres", pg_ctl)
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=120)
