"""Interrupts never land half-way through a message to or from the tracking writer.

A storm of SIGTERMs (as ``KeyboardInterrupt``, the way the CLI takes them) against a process
that does nothing but round trips to its writer: without :func:`storage.interrupts.held`, a
reply was cut in two after ~130 interrupts here and every later one misread (``EOFError``), or
the reader blocked for good. With it, the writer still answers after thousands.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

STORM = """
import os, random, signal, sys, threading, time
from storage import open_store, resolve_store
from storage.interrupts import install
from storage.tracking import ProcessTracking


def main() -> None:
    spec = resolve_store(sys.argv[1], env={})
    open_store(spec).close()
    writer = ProcessTracking(spec.mlflow_uri)
    writer.sync()
    install()
    stop = threading.Event()

    def storm() -> None:
        while not stop.is_set():
            time.sleep(random.uniform(0.001, 0.02))
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=storm, daemon=True).start()
    interrupts, deadline = 0, time.monotonic() + float(sys.argv[2])
    while interrupts < 100_000:
        try:
            if time.monotonic() > deadline:
                break
            while True:
                writer.sync(timeout_s=20)
        except KeyboardInterrupt:
            interrupts += 1
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stop.set()
    writer.sync(timeout_s=20)
    writer.close()
    print("interrupts", interrupts, flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
"""


def test_a_storm_of_interrupts_never_garbles_the_writers_replies(tmp_path: Path) -> None:
    script = tmp_path / "storm.py"
    script.write_text(STORM)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "store"), "20"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(__file__).resolve().parents[2],
        env=None,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    count = int(done.stdout.split()[-1])
    assert count >= 200, done.stdout  # enough interrupts to have broken the old path
