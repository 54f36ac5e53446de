"""The suite's ``xdist_group`` marks keep a module's tests on one pytest worker.

Tests that start a server or build a wheel once per module rely on it (``--dist loadgroup`` in
``pyproject.toml``). pytest-xdist 3.8 marks a grouped test by rewriting its node id in a way
pytest 9 no longer reads, and the groups then spread silently; this runs a grouped pair under
the installed pytest and pytest-xdist and checks that they shared one worker process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PAIR = """
import os
import pytest

@pytest.mark.xdist_group("together")
def test_first():
    print("PID", os.getpid())

def test_alone():
    pass

@pytest.mark.xdist_group("together")
def test_second():
    print("PID", os.getpid())
"""


def test_grouped_tests_run_in_one_worker(tmp_path: Path) -> None:
    (tmp_path / "test_pair.py").write_text(PAIR)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    options = ["-q", "-rP", "-n", "3", "--dist", "loadgroup", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *options, "test_pair.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    pids = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("PID ")}
    assert len(pids) == 1, done.stdout[-2000:]
