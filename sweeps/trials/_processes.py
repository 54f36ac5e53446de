"""A command trial's processes, all of them, and how they are ended.

The command starts in a session (and process group) of its own. Launchers put ranks in
groups of their own too (torchrun starts each worker in a new session), so the trial keeps a
record of every process group its descendants ran in, read from ``/proc`` while it runs, and
ending the trial signals each of them: SIGTERM, a grace period, SIGKILL. A rank's helpers (a
data loader's workers, a straggler it left) share its group and go with it. Where there is
no ``/proc`` only the command's own group is known.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def _table() -> dict[int, tuple[int, int]]:
    """Every process as pid -> (parent pid, process group), from ``/proc``."""
    found = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            found[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return found


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TrialProcesses:
    """The command's process tree: started in a new session, watched, ended as a whole."""

    def __init__(
        self,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        stdout: Path,
        stderr: Path,
    ) -> None:
        with stdout.open("wb") as out, stderr.open("wb") as err:
            self.process = subprocess.Popen(
                list(argv), cwd=cwd, env=dict(env), stdout=out, stderr=err, start_new_session=True
            )
        self.groups = {self.process.pid}
        self._own = os.getpgid(0)
        self._seen = 0.0

    def poll(self) -> int | None:
        """The command's exit code, or None while it runs; notes new process groups each second."""
        if time.monotonic() - self._seen > 1.0:
            self.watch()
        return self.process.poll()

    def watch(self) -> None:
        """Note the process groups of every descendant of the command now."""
        self._seen = time.monotonic()
        table = _table()
        children: dict[int, list[int]] = {}
        for pid, (parent, _) in table.items():
            children.setdefault(parent, []).append(pid)
        pending = [self.process.pid]
        while pending:
            pid = pending.pop()
            if pid in table and table[pid][1] != self._own:
                self.groups.add(table[pid][1])
            pending.extend(children.get(pid, []))

    def running(self) -> bool:
        """Whether any process of the trial is left."""
        self.process.poll()
        return self.process.returncode is None or any(_alive(g) for g in self.groups)

    def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for every process of the trial to exit on its own."""
        deadline = time.monotonic() + timeout_s
        while self.running():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def end(self, grace_s: float) -> None:
        """End every process of the trial: SIGTERM to each group, ``grace_s``, then SIGKILL."""
        if self.process.returncode is None:
            self.watch()
        if self.running():
            self._signal(signal.SIGTERM)
            if not self.wait(grace_s):
                self._signal(signal.SIGKILL)
                self.wait(5.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def _signal(self, sig: signal.Signals) -> None:
        for group in self.groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
