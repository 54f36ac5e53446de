"""What a worker hands every trial runner it builds, beyond the sweep file's workload section."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class RunnerEnv:
    """What a worker knows beyond the sweep file's ``workload`` section that a runner may need.

    ``base`` is the sweep file's directory (user modules live there); a command runner also
    takes the sweep's name (its trial folders), the store URLs its script must never see
    (``secrets``), the GPU ids of its slot and the event that interrupts its running trial.
    """

    device: torch.device
    base: Path | None = None
    sweep: str = "sweep"
    secrets: Sequence[str] = ()
    gpus: Sequence[str] = ()
    stop: threading.Event | None = None
