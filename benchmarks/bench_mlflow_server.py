"""An MLflow server as this project starts it (no job runner) against MLflow's default.

Each side starts ``mlflow server`` on a fresh SQLite store in a process group of its own, times
its ``/health`` answer, waits ``--settle`` seconds and sums the group's processes, CPU time and
resident memory. The two sides run in turn (A B A B ...), and each figure is the median of
``--runs``; the last lines are the default's figures over ours (storage/server_env.py).

    python benchmarks/bench_mlflow_server.py [--runs 2] [--settle 15]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage.server_env import JOBS_SWITCH, mlflow_server_env  # noqa: E402


@dataclass(frozen=True)
class Start:
    """One server start: seconds to ``/health``, and its group after settling."""

    health_s: float
    processes: int
    cpu_s: float
    rss_mb: float


def group_usage(group: int) -> tuple[int, float, float]:
    """(processes, CPU seconds, resident MB) of process group ``group`` (Linux ``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK")
    page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
    count, cpu, rss = 0, 0.0, 0.0
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) != group:  # fields from the state on: state, ppid, pgrp, ...
            continue
        count += 1
        cpu += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        rss += int(fields[21]) * page_mb
    return count, cpu, rss


def start_once(env: dict[str, str], settle_s: float) -> Start:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--workers", "1"]
        command += ["--backend-store-uri", f"sqlite:///{folder}/mlflow.db"]
        began = time.monotonic()
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                        break
                except OSError:
                    if process.poll() is not None:
                        raise SystemExit("mlflow server exited before it answered") from None
                    time.sleep(0.1)
            health = time.monotonic() - began
            time.sleep(settle_s)
            count, cpu, rss = group_usage(process.pid)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return Start(health, count, cpu, rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--settle", type=float, default=15.0)
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if k != JOBS_SWITCH}
    sides = {"MLflow's default": {**base, JOBS_SWITCH: "true"}, "ours": mlflow_server_env(base)}
    starts: dict[str, list[Start]] = {name: [] for name in sides}
    for _ in range(args.runs):
        for name, env in sides.items():
            starts[name].append(start_once(env, args.settle))
    medians = {}
    print(f"{'':18}{'/health s':>10}{'processes':>10}{'CPU s':>8}{'RSS MB':>8}")
    for name, runs in starts.items():
        row = [statistics.median(getattr(s, f) for s in runs) for f in Start.__dataclass_fields__]
        medians[name] = row
        print(f"{name:18}{row[0]:10.1f}{row[1]:10.0f}{row[2]:8.1f}{row[3]:8.0f}")
    default, ours = medians["MLflow's default"], medians["ours"]
    labels = ("/health", "processes", "CPU", "memory")
    ratios = ", ".join(
        f"{label} {d / o:.2f}x" for label, d, o in zip(labels, default, ours, strict=True)
    )
    print(f"default / ours: {ratios}")


if __name__ == "__main__":
    main()
