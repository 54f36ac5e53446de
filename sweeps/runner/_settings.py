"""What a sweep file says about training, as the objects the trial runners take."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from sweeps.config import SweepConfig
from sweeps.errors import UsageError
from sweeps.trials import TrainSettings, TrialRunner, make_runner

THREADS_ENV = "ONECYCLE_TORCH_THREADS"


def resolve_device(name: str) -> torch.device:
    """``auto`` is the first CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"workload.device: {name!r} requested but no CUDA GPU is available")
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and (device.index or 0) >= count:
        raise UsageError(
            f"workload.device: {name!r} requested but this machine has {count} CUDA GPU(s) "
            f"(cuda:0 to cuda:{count - 1})"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"workload.device: {name!r} requested but MPS is not available here")
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
    base: Path | None = None,
    *,
    secrets: Sequence[str] = (),
    gpus: Sequence[str] = (),
    stop: threading.Event | None = None,
) -> Callable[[], TrialRunner]:
    """The runner of the sweep's workload, built once per process and reused across trials.

    A command's trials run on ``gpus``; ``secrets`` (the store's URLs) are kept from its
    script, and ``stop`` ends its running trial as interrupted.
    """
    cache: list[TrialRunner] = []
    env: dict[str, Any] = {"sweep": config.name, "secrets": secrets, "gpus": gpus, "stop": stop}

    def make() -> TrialRunner:
        if not cache:
            try:
                cache.append(make_runner(config.workload, device, base, **env))
            except ValueError as error:
                raise UsageError(str(error)) from None
        return cache[0]

    return make


def check_workload(
    config: SweepConfig, source: str = "sweep", fused: int | str | None = None
) -> None:
    """Run what every trial would run once, before a command touches the store.

    A task's methods are each called on an untrained model; a mistake in them is a
    :class:`UsageError` naming the class and the method, and nothing is recorded. With fused
    trials (``fused``, else the file's setting) the model is checked to stack as well.
    """
    try:
        device = resolve_device(config.workload.device)
        runner = workload_factory(config, device)()
        runner.check(settings_of(config))
    except (ValueError, UsageError) as error:
        raise UsageError(f"{source}: {error}") from None
    if (config.execution.fused_trials if fused is None else fused) != 1:
        from sweeps.trials.fused import fusable_task

        try:
            fusable_task(runner)
        except ValueError as error:
            raise UsageError(f"{source}: execution.fused_trials / --fused: {error}") from None


def run_params(config: SweepConfig, device: torch.device) -> dict[str, Any]:
    """Training settings logged beside the OneCycle params of each trial."""
    workload = config.workload
    return {
        "workload": workload.source,
        "batch_size": workload.batch_size,
        "epochs": workload.epochs,
        "optimizer": workload.optimizer,
        "seed": workload.seed,
        "device": str(device),
        "weight_decay": workload.weight_decay,
    }
