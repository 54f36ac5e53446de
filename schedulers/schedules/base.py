"""The contract every schedule keeps: a pure function of the step count.

A schedule holds only its parameters. ``lr(step)`` and ``momentum(step)`` are closed forms, so
the value at step 10_000 costs the same as at step 1, resuming is a matter of knowing the step,
and property tests can probe any step directly. The torch adapter
(:class:`schedulers.adapter.ScheduledLR`) is the only place that holds a counter.

Step convention: ``step`` counts scheduler steps taken so far. Step 0 is the value right after
construction; the k-th optimizer update (counting from 0) runs with the value at step k. In
DeepSpeed's terms ``step = last_batch_iteration + 1``.
"""

from __future__ import annotations

import abc


def check_step(step: object) -> int:
    """Refuse a step that is not a non-negative integer.

    Example:
        >>> check_step(3)
        3
    """
    if not isinstance(step, int) or isinstance(step, bool):
        raise TypeError(f"`step` must be an integer, got {step!r}")
    if step < 0:
        raise ValueError(f"`step` must be >= 0, got {step!r}")
    return step


class Schedule(abc.ABC):
    """A learning-rate schedule, optionally with a momentum schedule, in closed form."""

    #: The DeepSpeed ``type`` name of this schedule's JSON block.
    deepspeed_type: str = ""

    def lr(self, step: int) -> float:
        """Learning rate after ``step`` scheduler steps."""
        return self._lr(check_step(step))

    def momentum(self, step: int) -> float | None:
        """Momentum (SGD ``momentum`` or Adam ``betas[0]``) after ``step`` steps, or None.

        None means the schedule leaves momentum alone.
        """
        return self._values(check_step(step))[1]

    def values(self, step: int) -> tuple[float, float | None]:
        """Learning rate and momentum after ``step`` steps, computed together."""
        return self._values(check_step(step))

    @abc.abstractmethod
    def _lr(self, step: int) -> float:
        """Unchecked learning rate; ``step`` is a non-negative int."""

    def _values(self, step: int) -> tuple[float, float | None]:
        """Unchecked (lr, momentum); the adapter's hot path calls this once per step."""
        return self._lr(step), None

    @property
    @abc.abstractmethod
    def horizon(self) -> int:
        """A step count long enough to show the schedule's whole shape (for tables and plots)."""

    def milestones(self) -> dict[str, float]:
        """Named steps where the schedule changes phase, for plots and tables."""
        return {}

    def phase(self, step: int) -> str:
        """A short name for the part of the schedule ``step`` lies in."""
        return ""
