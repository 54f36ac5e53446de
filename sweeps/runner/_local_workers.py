"""``onecycle run --workers N``: N local worker processes on one sweep, one merged view.

Each worker is ``onecycle worker NAME`` in its own process (so a crash is contained and each
has its own tracking writer), pinned to a GPU from ``--gpus`` (round robin; several workers may
share one) or, on a CPU, given its share of the cores. The parent polls the study and draws the
sweep's progress with the trial each worker is running; Ctrl+C or SIGTERM is passed on, and
each worker closes its current trial cleanly. What a worker writes to stderr is shown as it
comes, and a worker that fails is reported in one line with the last thing it said.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from storage import Store
from storage.trial_queries import count_by_state
from sweeps.runner._settings import THREADS_ENV
from sweeps.runner._worker_tag import pid_of


def worker_commands(name: str, args: Sequence[str], count: int) -> list[list[str]]:
    """The command line of each worker process (never the store: ``ps`` shows it to all)."""
    command = [sys.executable, "-m", "sweeps", "worker", name, "--quiet", *args]
    return [list(command) for _ in range(count)]


def worker_env(
    index: int, count: int, gpus: Sequence[str], store: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment of worker ``index``: the store's settings, its GPU or its share of the cores.

    The store travels as ``ONECYCLE_*`` variables, which only the user's own processes read.
    """
    env = {**os.environ, **(store or {})}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    else:
        cores = os.cpu_count() or 1
        env[THREADS_ENV] = str(max(1, (cores - count) // count))  # leave writers a core each
    return env


def _view(study: optuna.Study, n_trials: int, workers: list[subprocess.Popen[bytes]]) -> Table:
    found = count_by_state(study)
    table = Table(
        title=(
            f"sweep {study.study_name}: {found['complete'] + found['pruned']}/{n_trials} finished "
            f"(complete {found['complete']}, pruned {found['pruned']}, failed {found['fail']})"
        ),
        title_justify="left",
    )
    table.add_column("worker")
    table.add_column("pid")
    table.add_column("running trial")
    running = {
        pid_of(t.user_attrs.get("worker", "")): t.number
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    }
    for index, process in enumerate(workers):
        state = "exited" if process.poll() is not None else str(running.get(str(process.pid), "-"))
        table.add_row(str(index), str(process.pid), state)
    return table


@dataclass
class WorkerFailure:
    """A worker that exited with an error: which one, how, and the last line it wrote."""

    index: int
    pid: int
    code: int
    reason: str

    def line(self) -> str:
        """One line naming the worker and its reason."""
        how = f"killed by signal {-self.code}" if self.code < 0 else f"exit code {self.code}"
        return f"worker {self.index} (pid {self.pid}) failed ({how}): {self.reason}"


class _Stderr:
    """Passes a worker's stderr on to the console, keeping its last line for a failure report."""

    PREFIX = "onecycle: error: "

    def __init__(self, process: subprocess.Popen[bytes], index: int, console: Console) -> None:
        self.last = ""
        self._process, self._index, self._console = process, index, console
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        if self._process.stderr is None:
            return
        for raw in self._process.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line.strip():
                self.last = line.strip().removeprefix(self.PREFIX)
                self._console.print(
                    Text(f"[worker {self._index}] {line}", style="dim"), soft_wrap=True
                )

    def reason(self) -> str:
        """The worker's last line, once it has all been read."""
        self._thread.join(timeout=10)
        return self.last or "it wrote nothing to stderr"


def run_local_workers(
    store: Store,
    name: str,
    study_name: str,
    n_trials: int,
    args: Sequence[str],
    count: int,
    gpus: Sequence[str],
    console: Console,
    store_env: Mapping[str, str],
) -> list[WorkerFailure]:
    """Start ``count`` workers, show their progress, wait; return the ones that failed."""
    study = optuna.load_study(study_name=study_name, storage=store.optuna_storage)
    workers = [
        subprocess.Popen(
            command, env=worker_env(i, count, gpus, store_env), stderr=subprocess.PIPE
        )
        for i, command in enumerate(worker_commands(name, args, count))
    ]
    errors = [_Stderr(process, i, console) for i, process in enumerate(workers)]
    try:
        with Live(_view(study, n_trials, workers), console=console, refresh_per_second=2) as live:
            while any(process.poll() is None for process in workers):
                time.sleep(1.0)
                live.update(_view(study, n_trials, workers))
    except KeyboardInterrupt:
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in workers:
            process.wait(timeout=300)
        raise
    return [
        WorkerFailure(index, process.pid, process.returncode, errors[index].reason())
        for index, process in enumerate(workers)
        if process.returncode
    ]
