"""Where a command's wall time went, phase by phase: ``onecycle --profile`` or ONECYCLE_PROFILE=1.

Fixed costs (imports, opening stores, starting the tracking writer, the summary) are easy to
pay without noticing; this clock names them. Phases are timed on the main thread only and do
not overlap: a phase entered inside another pauses the outer one, so the rows add up to the
wall time, and what no phase claims is shown as ``other``. Timing costs two clock reads per
phase, so the clock always runs and ``--profile`` only decides whether the table is printed.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TextIO

#: Set to 1 to print the table after any command, as ``--profile`` does.
PROFILE_ENV = "ONECYCLE_PROFILE"


def process_age_s() -> float:
    """Seconds since this process started (the interpreter's own start-up included); 0 if unknown.

    Read from ``/proc`` on Linux, where it is free; elsewhere the table starts at the CLI.
    """
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as uptime:
            now = float(uptime.read().split()[0])
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, now - started)


class PhaseClock:
    """Wall time per named phase of one process (see the module docstring)."""

    def __init__(self) -> None:
        self.origin = time.perf_counter() - process_age_s()
        self.totals: dict[str, float] = {"python start": time.perf_counter() - self.origin}
        self._stack: list[tuple[str, float]] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count the time inside the block to ``name`` (nested phases pause this one)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        now = time.perf_counter()
        if self._stack:
            outer, since = self._stack[-1]
            self.totals[outer] = self.totals.get(outer, 0.0) + now - since
        self._stack.append((name, now))
        try:
            yield
        finally:
            end = time.perf_counter()
            _, since = self._stack.pop()
            self.totals[name] = self.totals.get(name, 0.0) + end - since
            if self._stack:
                self._stack[-1] = (self._stack[-1][0], end)

    def rows(self) -> list[tuple[str, float]]:
        """(phase, seconds) in the order first seen, then ``other``, then the wall time."""
        wall = time.perf_counter() - self.origin
        claimed = sum(self.totals.values())
        return [*self.totals.items(), ("other", max(0.0, wall - claimed)), ("wall", wall)]

    def print(self, stream: TextIO | None = None) -> None:
        """The table, on stderr unless told otherwise (stdout stays the command's own)."""
        out = stream or sys.stderr
        rows = self.rows()
        wall = rows[-1][1] or 1.0
        print("onecycle profile: wall time by phase", file=out)
        for name, seconds in rows:
            share = "" if name == "wall" else f"{100 * seconds / wall:5.1f} %"
            print(f"  {name:<16} {seconds:8.3f} s  {share}", file=out)


#: The process's clock.
CLOCK = PhaseClock()


def phase(name: str) -> AbstractContextManager[None]:
    """A block timed as phase ``name`` on the process's clock (see :class:`PhaseClock`)."""
    return CLOCK.phase(name)


def wanted(argv: list[str]) -> bool:
    """Whether the table was asked for, by flag or by environment."""
    return "--profile" in argv or os.environ.get(PROFILE_ENV, "") not in ("", "0")
