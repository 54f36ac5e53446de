"""The batch-scaling study file (``onecycle study batch-scaling FILE``), parsed strictly.

Like the sweep file (:mod:`sweeps.config`, whose error formatting and sub-models it reuses),
unknown keys are refused with their path and every value is checked on the way in. The 1-Cycle
part of the study is a sweep's ``search`` / ``scheduler`` / ``range_test`` / ``execution``
sections, validated as a whole sweep file would be.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, model_validator

from sweeps.config import (
    BUILTIN_METRICS,
    Execution,
    RangeTest,
    Search,
    Strict,
    SweepConfig,
    Workload,
    format_error,
)
from sweeps.config._files import load_mapping
from sweeps.errors import UsageError
from sweeps.runner import parse_config


class LrSearch(Strict):
    """The small sweep that finds the baseline's best fixed lr (log-uniform, TPE)."""

    n_trials: Annotated[int, Field(ge=1, le=200)] = 8
    low: Annotated[float, Field(gt=0.0)] = 1e-3
    high: Annotated[float, Field(gt=0.0)] = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> LrSearch:
        if self.low >= self.high:
            raise ValueError(f"`low` must be < `high`, got low={self.low} >= high={self.high}")
        return self


class BatchScalingConfig(Strict):
    """A whole study file."""

    name: str
    workload: Workload
    scale: Annotated[int, Field(ge=2, le=1024)] = 8
    budget_factor: Annotated[float, Field(ge=1.0, le=64.0)] = 4.0
    target_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.995
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9
    eval_samples: Annotated[int, Field(ge=1)] | None = None
    baseline_search: LrSearch = Field(default_factory=LrSearch)
    onecycle_search: Search
    scheduler: dict[str, Any] = Field(default_factory=dict)
    range_test: RangeTest = Field(default_factory=RangeTest)
    execution: Execution = Field(default_factory=Execution)
    #: For a command workload: how the large-batch runs are launched (``scale`` processes, as
    #: in the tutorial, e.g. ``torchrun --nproc_per_node 8 ...``); default ``workload.command``.
    large_batch_command: str | Annotated[list[str], Field(min_length=1)] | None = None

    @property
    def large_batch(self) -> int:
        """The scaled batch size (``scale`` x the baseline's)."""
        return self.workload.batch_size * self.scale

    @property
    def every_samples(self) -> int:
        """Samples between evaluations, rounded to a multiple of the large batch."""
        if self.eval_samples is not None:
            return max(self.large_batch, self.eval_samples // self.large_batch * self.large_batch)
        return self.large_batch

    def onecycle_sweep(self, base: Path | None = None) -> SweepConfig:
        """The 1-Cycle sweep at the large batch, as a sweep file would give it.

        Its objective is the workload's: a built-in's metric, a task class's ``metric`` and
        ``direction`` (the task module is found next to the study file, ``base``), or ``val_auc``
        for a command's script.
        """
        workload = self.workload.model_dump(mode="json")
        workload["batch_size"] = self.large_batch
        if self.large_batch_command is not None:
            workload["command"] = self.large_batch_command
        workload["eval_every"] = self.every_samples // self.large_batch
        builtin = self.workload.builtin
        objective: dict[str, str] = {}
        if builtin:
            objective = {"metric": BUILTIN_METRICS[builtin], "direction": "maximize"}
        elif self.workload.command is not None:  # a script reports val_auc, as synthetic_ctr
            objective = {"metric": "val_auc", "direction": "maximize"}
        data = {
            "name": self.name,
            "workload": workload,
            "objective": objective,
            "search": self.onecycle_search.model_dump(mode="json"),
            "scheduler": dict(self.scheduler),
            "range_test": self.range_test.model_dump(mode="json"),
            "execution": self.execution.model_dump(mode="json"),
        }
        return parse_config(data, f"study {self.name!r}: onecycle_search", base)


def parse_study(
    data: dict[str, Any], source: str = "study", base: Path | None = None
) -> BatchScalingConfig:
    """Validate a loaded study mapping; :class:`UsageError` naming the key on any problem.

    A command workload (a script reporting ``val_auc``) runs in ``base``, the study file's
    directory, unless it names its own ``workdir``.
    """
    workload = data.get("workload")
    if isinstance(workload, dict) and workload.get("command") is not None:
        folder = Path(str(workload.get("workdir") or "."))
        if not folder.is_absolute():
            folder = ((base or Path.cwd()) / folder).resolve()
        data = {**data, "workload": {**workload, "workdir": str(folder)}}
    try:
        config = BatchScalingConfig.model_validate(data)
    except ValidationError as error:
        raise UsageError(f"{source}: {format_error(error, BatchScalingConfig)}") from None
    if config.workload.entrypoint is not None:
        raise UsageError(
            f"{source}: workload.entrypoint: the batch-scaling study evaluates every "
            "eval_samples in the project's own loop; write the model as a sweeps.Task and name "
            f"it in `workload.task`, got entrypoint {config.workload.entrypoint!r}"
        )
    if config.large_batch_command is not None and config.workload.command is None:
        raise UsageError(
            f"{source}: large_batch_command: needs a `command` workload, got "
            f"{config.large_batch_command!r}"
        )
    config.onecycle_sweep(base)  # the 1-Cycle part must be a valid sweep on its own
    return config


def load_study(path: Path) -> BatchScalingConfig:
    """Read and validate a study file."""
    return parse_study(load_mapping(path), str(path), path.resolve().parent)
