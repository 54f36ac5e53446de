"""When each trial of a sweep ended, as the sweep loop reports its progress (for benchmarks)."""

from __future__ import annotations

import time

from sweeps.runner import Progress, SweepOutcome


class Clock(Progress):
    """Records when each trial ends."""

    def __init__(self) -> None:
        self.ends: list[float] = [time.perf_counter()]

    def sweep(self, outcome: SweepOutcome, n_trials: int) -> None:
        self.ends.append(time.perf_counter())
