"""Entrypoints and a task that misbehave the ways the failure tests need.

A sweep file names them as ``tests.failures_tests.user_code:...``, as it would a user's module.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch

import sweeps


def _steps(ctx: Any) -> None:
    """A few real updates under the trial's OneCycle schedule."""
    torch.manual_seed(ctx.seed)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = ctx.scheduler(optimizer)
    x = torch.randn(16, 2)
    for _ in range(4):
        loss = (model(x) - x.sum(dim=1, keepdim=True)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ctx.log_loss(loss)
        scheduler.step()


def other_names(ctx: Any) -> None:
    """Reports its accuracy under another name than the objective's."""
    _steps(ctx)
    ctx.report({"accuracy": 0.5, "loss": 0.25})


def nothing(ctx: Any) -> None:
    """Trains, then neither reports nor returns anything."""
    _steps(ctx)


def returns_other_names(ctx: Any) -> dict[str, float]:
    """Returns its metrics, none of them the objective's."""
    _steps(ctx)
    return {"acc": 0.5}


def _first_time(ctx_options: dict[str, Any]) -> bool:
    """True the first time a sweep calls it (a marker file in ``options.marker``)."""
    marker = Path(ctx_options["marker"])
    if marker.exists():
        return False
    marker.touch()
    return True


def exits_once(ctx: Any) -> dict[str, float]:
    """The first trial calls ``sys.exit(3)``; the others train and report."""
    if _first_time(ctx.options):
        sys.exit(3)
    _steps(ctx)
    return {"val_accuracy": 0.75}


def interrupted(ctx: Any) -> None:
    """Ctrl+C during the first trial."""
    _steps(ctx)
    raise KeyboardInterrupt


class ExitingTask(sweeps.Task):
    """A task whose ``batches`` calls ``sys.exit(4)`` in the first trial's second epoch.

    The pre-flight check only asks for epoch 0, so the sweep is recorded before it exits.
    """

    metric = "val_accuracy"

    def __init__(self, batch_size: int, seed: int, device: torch.device, marker: str = "") -> None:
        super().__init__(batch_size, seed, device)
        self.marker = marker
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(64, 4, generator=generator)
        self.y = (self.x[:, 0] > 0).long()

    def build_model(self) -> torch.nn.Module:
        return torch.nn.Linear(4, 2)

    def batches(self, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if epoch == 1 and _first_time({"marker": self.marker}):
            sys.exit(4)
        size = self.batch_size
        return [(self.x[i : i + size], self.y[i : i + size]) for i in range(0, 64, size)]

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(output, target)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        accuracy = (model(self.x).argmax(dim=1) == self.y).float().mean()
        return {"val_accuracy": float(accuracy), "pid": float(os.getpid())}


def dies_once(ctx: Any) -> dict[str, float]:
    """The first trial kills its process with ``os._exit(5)`` (no cleanup runs)."""
    _steps(ctx)
    if _first_time(ctx.options):
        os._exit(5)
    return {"val_accuracy": 0.75}


def waits_once(ctx: Any) -> dict[str, float]:
    """The first trial marks ``options.marker`` and waits there (for a signal); others train."""
    if _first_time(ctx.options):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.05)
    _steps(ctx)
    return {"val_accuracy": 0.75}


def held(ctx: Any) -> dict[str, float]:
    """Trains a few updates and reports, then waits while ``options.hold`` exists: a trial still
    running when a cancel or a signal lands, at no cost of CPU to the machine meanwhile."""
    _steps(ctx)
    ctx.report({"val_accuracy": 0.5})
    hold = Path(ctx.options["hold"])
    deadline = time.monotonic() + 300
    while hold.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return {"val_accuracy": 0.75}


def steady(ctx: Any) -> dict[str, float]:
    """Trains a few updates and reports its metric: a trial that succeeds."""
    _steps(ctx)
    return {"val_accuracy": 0.75}


def always_exits(ctx: Any) -> None:
    """Every trial calls ``sys.exit(3)``."""
    sys.exit(3)


def interrupted_once(ctx: Any) -> dict[str, float]:
    """Ctrl+C during the first trial; the others train and report."""
    _steps(ctx)
    if _first_time(ctx.options):
        raise KeyboardInterrupt
    return {"val_accuracy": 0.75}


def hides_an_interrupt(ctx: Any) -> dict[str, float]:
    """SIGTERM during the first trial, caught as a library might and raised as its own error
    with the interrupt cut from the chain (Optuna's storage raises ``StorageInternalError``)."""
    _steps(ctx)
    if _first_time(ctx.options):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # the signal lands here
        except KeyboardInterrupt:
            raise RuntimeError("An exception is raised during the commit.") from None
    return {"val_accuracy": 0.75}


def loses_the_artifact_store(ctx: Any) -> dict[str, float]:
    """The first trial to find the sweep's artifact folder (``options.folder``) makes it a file.

    As an artifact store that went away (an unmounted volume) would, every artifact written
    after that fails; the sweep's databases are unharmed. (The folder appears when the first
    trial's artifacts are written, so the second trial is the one.)
    """
    _steps(ctx)
    folder = Path(ctx.options["folder"])
    if folder.is_dir() and _first_time(ctx.options):
        shutil.rmtree(folder)
        folder.write_text("the artifact store is gone")
    return {"val_accuracy": 0.75}


def fills_the_disk_once(ctx: Any) -> dict[str, float]:
    """The first trial trains, then fills the disk at ``options.ballast`` before it reports.

    As a checkpoint written beside the store would: the trial's run is open, and its end
    (final metrics, status) finds no space left. ``options.marker`` (on another disk) says
    whether it already did.
    """
    _steps(ctx)
    if _first_time(ctx.options):
        with open(ctx.options["ballast"], "wb") as ballast:
            try:
                while True:
                    ballast.write(b"\0" * 65536)
                    ballast.flush()
            except OSError:
                pass
    return {"val_accuracy": 0.75}


def fails_until_fixed(ctx: Any) -> dict[str, float]:
    """Raises until the file ``options.fixed`` exists (the user fixed the code), then trains."""
    if not Path(ctx.options["fixed"]).exists():
        raise ValueError("a bug in the training code")
    _steps(ctx)
    return {"val_accuracy": 0.75}


def exits_in_the_range_test(ctx: Any) -> dict[str, float]:
    """Calls ``sys.exit(3)`` while the LR range test runs it; trains normally otherwise."""
    if ctx.in_range_test:
        sys.exit(3)
    _steps(ctx)
    return {"val_accuracy": 0.75}
