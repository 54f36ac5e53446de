"""The sweep file's ``workload`` section: what to train (one of four kinds) and how."""

from __future__ import annotations

import re
import shlex
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from sweeps.config._strict import Seed, Strict
from sweeps.errors import excerpt

_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")
#: The optimizers a trial can use (sweeps.trials builds them).
OptimizerName = Literal["sgd", "adamw"]
#: Why an entrypoint cannot have fused trials, and what to write instead.
FUSED_NEEDS_TASK = (
    "fused trials stack the model of a task the project trains; an entrypoint function runs "
    "its own loop, so write it as a sweeps.Task and name it in `workload.task` (README: Tune "
    "your own model)"
)
_ENTRYPOINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
#: What ``workload.command`` may say in braces; filled in for each trial.
PLACEHOLDERS = ("deepspeed_config", "params", "trial", "master_port", "output_dir")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")
_COMMAND_ONLY = ("deepspeed_config", "gpus_per_trial", "max_trial_seconds", "workdir")


#: The keys that name what a sweep trains, one per kind of trial (``sweeps.trials.RUNNERS``).
WORKLOAD_KINDS = ("builtin", "task", "entrypoint", "command")


class Workload(Strict):
    """What to train (one of ``builtin``, ``task``, ``entrypoint``, ``command``), and how."""

    builtin: Literal["digits", "breast_cancer", "synthetic_ctr"] | None = None
    task: str | None = None
    entrypoint: str | None = None
    #: A launched training script (``docs/command_trials.md``): a string split like a shell, or
    #: a list; ``deepspeed_config`` and ``workdir`` are relative to the sweep file's directory.
    command: str | Annotated[list[str], Field(min_length=1)] | None = None
    deepspeed_config: str | None = None
    gpus_per_trial: Annotated[int, Field(ge=0)] | None = None
    max_trial_seconds: Annotated[float, Field(gt=0)] | None = None
    workdir: str | None = None
    batch_size: Annotated[int, Field(ge=1)] = 64
    epochs: Annotated[int, Field(ge=1)] = 10
    optimizer: OptimizerName = "sgd"
    device: str = "auto"
    seed: Seed = 0
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.0
    eval_every: Annotated[int, Field(ge=1)] | None = None
    target: float | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"must be auto, cpu, cuda, cuda:N or mps, got {excerpt(value)}")
        return value

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, value: str | None) -> str | None:
        if value is not None and not _ENTRYPOINT.match(value):
            raise ValueError(f"must look like 'package.module:function', got {excerpt(value)}")
        return value

    @field_validator("task")
    @classmethod
    def _task(cls, value: str | None) -> str | None:
        if value is not None and not _ENTRYPOINT.match(value):
            raise ValueError(f"must look like 'package.module:Class', got {excerpt(value)}")
        return value

    @field_validator("command")
    @classmethod
    def _command(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is None:
            return value
        try:
            argv = shlex.split(value) if isinstance(value, str) else value
        except ValueError as error:
            raise ValueError(
                f"cannot be split like a shell line ({error}), got {excerpt(value)}"
            ) from None
        if not argv:
            raise ValueError(f"must name a program to run, got {excerpt(value)}")
        for name in (n for arg in argv for n in _PLACEHOLDER.findall(arg)):
            if name not in PLACEHOLDERS:
                raise ValueError(f"unknown placeholder {{{name}}}; known: {list(PLACEHOLDERS)}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Workload:
        given = [key for key in WORKLOAD_KINDS if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(
                "set exactly one of `builtin`, `task`, `entrypoint` and `command`, got "
                f"{given or 'none'}"
            )
        for key in _COMMAND_ONLY:
            if self.command is None and getattr(self, key) is not None:
                raise ValueError(
                    f"`{key}` is for a `command` workload, got {excerpt(getattr(self, key))}"
                )
        return self

    @property
    def kind(self) -> str:
        """Which key names what to train: ``builtin``, ``task``, ``entrypoint`` or ``command``."""
        return next(key for key in WORKLOAD_KINDS if getattr(self, key) is not None)

    @property
    def source(self) -> str:
        """What to train, as the file says it (a built-in's name or a ``module:name``)."""
        value = getattr(self, self.kind)
        return shlex.join(value) if isinstance(value, list) else str(value)
