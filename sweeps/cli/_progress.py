"""A live view of a running sweep (rich): trials done, outcomes, best so far, current trial."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar

from sweeps.runner import Progress, SweepOutcome


class LiveProgress(Progress):
    """Two bars: the sweep (finished / n_trials) and the current trial's updates."""

    def __init__(self, console: Console, name: str, metric: str) -> None:
        self.metric = metric
        self.bar = RichBar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.sweep_task: TaskID = self.bar.add_task(f"sweep {name}", total=None, detail="")
        self.trial_task: TaskID = self.bar.add_task("trial", total=None, detail="", visible=False)

    def __enter__(self) -> LiveProgress:
        self.bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.bar.stop()

    def sweep(self, outcome: SweepOutcome, n_trials: int) -> None:
        """Update the sweep bar after each trial."""
        best = "-" if outcome.best_value is None else f"{outcome.best_value:.4f}"
        detail = (
            f"complete {outcome.complete}  pruned {outcome.pruned}  failed {outcome.failed}  "
            f"best {self.metric} {best}"
        )
        self.bar.update(self.sweep_task, total=n_trials, completed=outcome.finished, detail=detail)

    def trial_started(self, number: int, total_steps: int) -> None:
        """Reset the trial bar."""
        self._restart_trial_bar(f"trial {number}", total_steps)

    def batch_started(self, numbers: list[int], total_steps: int) -> None:
        """Reset the trial bar for a fused batch."""
        self._restart_trial_bar(
            f"{len(numbers)} fused trials {numbers[0]}-{numbers[-1]}", total_steps
        )

    def _restart_trial_bar(self, description: str, total_steps: int) -> None:
        self.bar.update(
            self.trial_task,
            description=description,
            total=total_steps or None,
            completed=0,
            detail="updates",
            visible=True,
        )

    def step(self, number: int, steps_done: int) -> None:
        """Advance the trial bar."""
        self.bar.update(self.trial_task, completed=steps_done)
