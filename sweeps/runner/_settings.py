"""What a sweep file says about training, as the objects the trial runners take."""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

from sweeps.config import SweepConfig
from sweeps.errors import UsageError
from sweeps.trials import TrainSettings
from sweeps.workloads import build_workload
from sweeps.workloads.base import Workload

THREADS_ENV = "ONECYCLE_TORCH_THREADS"


def resolve_device(name: str) -> torch.device:
    """``auto`` is the first CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"workload.device: {name!r} requested but no CUDA GPU is available")
    return device


def settings_of(config: SweepConfig) -> TrainSettings:
    """Training settings from the sweep file's workload and objective sections."""
    workload = config.workload
    return TrainSettings(
        epochs=workload.epochs,
        optimizer=workload.optimizer,
        weight_decay=workload.weight_decay,
        seed=workload.seed,
        metric=config.metric,
        direction=config.objective.direction,
        eval_every=workload.eval_every,
        target=workload.target,
    )


def workload_factory(
    config: SweepConfig,
    device: torch.device,
    secrets: Sequence[str] = (),
    gpus: Sequence[str] = (),
    stop: threading.Event | None = None,
) -> Callable[[], Workload]:
    """Build the built-in workload once per process and reuse it across trials.

    A command's trials run on ``gpus``; ``secrets`` (the store's URLs) are kept from its
    script, and ``stop`` ends its running trial as interrupted.
    """
    if config.workload.command is not None:
        from sweeps.trials import command_workload

        return command_workload(config, secrets, gpus, stop)
    if config.workload.builtin is None:
        from sweeps.trials import entrypoint_workload

        return entrypoint_workload(config, device)
    cache: list[Workload] = []

    def make() -> Workload:
        if not cache:
            cache.append(
                build_workload(
                    config.workload.builtin or "",
                    config.workload.batch_size,
                    config.workload.seed,
                    device,
                    **config.workload.options,
                )
            )
        return cache[0]

    return make


def run_params(config: SweepConfig, device: torch.device) -> dict[str, Any]:
    """Training settings logged beside the OneCycle params of each trial."""
    workload = config.workload
    return {
        "workload": workload.builtin or workload.entrypoint or _command_text(workload.command),
        "batch_size": workload.batch_size,
        "epochs": workload.epochs,
        "optimizer": workload.optimizer,
        "seed": workload.seed,
        "device": str(device),
        "weight_decay": workload.weight_decay,
    }


def _command_text(command: str | list[str] | None) -> str:
    return command if isinstance(command, str) else shlex.join(command or [])
