"""The sweep file: the one place untrusted input is parsed (pydantic v2, strict, frozen).

A sweep file is YAML (JSON is YAML too). Unknown keys are refused with their path and a
did-you-mean; a value of the wrong type or out of range names its path, the constraint and the
value. Search-space keys and fixed ``scheduler`` keys are DeepSpeed's OneCycle names.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from schedulers.config import parameter_names
from sweeps.config._search_options import HyperbandOptions, TpeOptions
from sweeps.config._strict import Seed, Strict
from sweeps.config._workload import FUSED_NEEDS_TASK, Workload
from sweeps.errors import UsageError, excerpt

ONE_CYCLE_KEYS, _ = parameter_names("OneCycle")
SCHEDULE_KEYS = [k for k in ONE_CYCLE_KEYS if k != "last_batch_iteration"]
BUILTIN_METRICS = {
    "digits": "val_accuracy",
    "breast_cancer": "val_auc",
    "synthetic_ctr": "val_auc",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class Objective(Strict):
    """The metric a trial is judged by."""

    metric: str | None = None
    direction: Literal["maximize", "minimize"] = "maximize"


class Range(Strict):
    """A numeric range to search; ``log`` samples on a log scale; ``step`` makes a grid."""

    low: float
    high: float
    log: StrictBool = False
    step: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"`low` must be <= `high`, got low={self.low} > high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"`low` must be > 0 with log: true, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("`step` and `log: true` cannot be combined")
        return self


class Choices(Strict):
    """A list of values to choose from."""

    choices: Annotated[list[float | int | bool | None], Field(min_length=1)]


class AutoRange(Strict):
    """A range the LR range test sets: ``[suggested / below, suggested * above]``, log scale.

    ``cycle_max_lr: auto`` is ``{auto: true}`` with the defaults. The upper end never goes past
    the lr where the range test diverged.
    """

    auto: Literal[True]
    below: Annotated[float, Field(ge=1.0)] = 2.0
    above: Annotated[float, Field(ge=1.0)] = 2.0


def _entry_kind(value: Any) -> str:
    """Which form a space entry takes, so an error names that form's problem only."""
    if isinstance(value, dict):
        if "auto" in value:
            return "~auto"
        return "~choices" if "choices" in value else "~range"
    if isinstance(value, (Range, Choices, AutoRange)):
        return {Range: "~range", Choices: "~choices", AutoRange: "~auto"}[type(value)]
    return "~auto_word" if isinstance(value, str) else "~value"


SpaceEntry = Annotated[
    Annotated[Range, Tag("~range")]
    | Annotated[Choices, Tag("~choices")]
    | Annotated[AutoRange, Tag("~auto")]
    | Annotated[Literal["auto"], Tag("~auto_word")]
    | Annotated[StrictBool | int | float, Tag("~value")],
    Discriminator(_entry_kind),
]
AUTO_KEYS = ("cycle_min_lr", "cycle_max_lr")


class RangeTestResult(Strict):
    """What a range test suggested (filled in by the sweep, or pinned by hand)."""

    cycle_min_lr: Annotated[float, Field(gt=0.0)]
    cycle_max_lr: Annotated[float, Field(gt=0.0)]
    lr_diverged: Annotated[float, Field(gt=0.0)] | None = None
    run_id: str | None = None


class RangeTest(Strict):
    """How ``onecycle range-test`` and ``auto`` bounds run the LR range test."""

    min_lr: Annotated[float, Field(gt=0.0)] = 1e-5
    max_lr: Annotated[float, Field(gt=0.0)] = 10.0
    steps: Annotated[int, Field(ge=10)] = 300
    mode: Literal["exponential", "linear"] = "exponential"
    staircase: StrictBool = False
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    result: RangeTestResult | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RangeTest:
        if self.max_lr <= self.min_lr:
            raise ValueError(
                f"`max_lr` must be > `min_lr`, got min_lr={self.min_lr} >= max_lr={self.max_lr}"
            )
        return self


class Search(Strict):
    """How to search: the budget, the sampler, the pruner, the space."""

    n_trials: Annotated[int, Field(ge=1)] = 20
    sampler: Literal["tpe", "random", "grid", "cmaes", "qmc"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    tpe: TpeOptions | None = None
    hyperband: HyperbandOptions | None = None
    seed: Seed | None = 0
    max_failure_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    space: dict[str, SpaceEntry] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _group_needs_multivariate(self) -> Search:
        # Options of a sampler or pruner not chosen are kept, unused: switching `sampler:
        # random` for a baseline run should not mean deleting the recipe's `tpe:` block.
        if self.tpe is not None and self.tpe.group and not self.tpe.multivariate:
            raise ValueError("`tpe.group`: needs tpe.multivariate: true, got multivariate: false")
        return self

    @field_validator("space")
    @classmethod
    def _auto(cls, space: dict[str, Any]) -> dict[str, Any]:
        entries = {k: AutoRange(auto=True) if v == "auto" else v for k, v in space.items()}
        for key, entry in entries.items():
            if isinstance(entry, AutoRange) and key not in AUTO_KEYS:
                raise ValueError(
                    f"`{key}`: only cycle_min_lr and cycle_max_lr can be `auto`, got auto"
                )
        return entries


class Execution(Strict):
    """How trials run; not part of what the sweep is (a resumed sweep may change it)."""

    fused_trials: Annotated[int, Field(ge=1, le=4096)] | Literal["auto"] = 1


class SweepConfig(Strict):
    """A whole sweep file."""

    name: str
    workload: Workload
    objective: Objective = Field(default_factory=Objective)
    search: Search = Field(default_factory=Search)
    scheduler: dict[str, Any] = Field(default_factory=dict)
    enqueue: list[dict[str, Any]] = Field(default_factory=list)
    range_test: RangeTest = Field(default_factory=RangeTest)
    execution: Execution = Field(default_factory=Execution)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "must start with a letter or digit and use only letters, digits, '_', '.', '-' "
                f"(at most 100 characters), got {excerpt(value)}"
            )
        return value

    @property
    def metric(self) -> str:
        """The objective metric: the configured one, or the built-in workload's own."""
        if self.objective.metric:
            return self.objective.metric
        if self.workload.builtin:
            return BUILTIN_METRICS[self.workload.builtin]
        return "val_accuracy"

    @property
    def auto_keys(self) -> list[str]:
        """Search keys whose bounds come from the LR range test."""
        return [k for k, v in self.search.space.items() if isinstance(v, AutoRange)]

    @property
    def needs_range_test(self) -> bool:
        """True when ``auto`` bounds wait for a range test result."""
        return bool(self.auto_keys) and self.range_test.result is None


def _check_names(where: str, keys: list[str]) -> None:
    for key in keys:
        if key not in SCHEDULE_KEYS:
            close = difflib.get_close_matches(key, SCHEDULE_KEYS, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            raise ValueError(f"{where}.{key}: not a OneCycle parameter{hint}")


def format_error(error: ValidationError, root: type[BaseModel] | None = None) -> str:
    """Pydantic's first error as one line: the key's path, the constraint, the value."""
    first = error.errors()[0]
    location = ".".join(
        str(part) for part in first["loc"] if not str(part).startswith(("function-", "~"))
    )
    message = first["msg"].removeprefix("Value error, ")
    if "~value" in first["loc"]:
        location = location.rsplit(".", 1)[0]  # drop the bool/int/float member name
        message = "must be {low, high}, {choices: [...]}, auto, or a single value"
    if first["type"] == "extra_forbidden":
        key = str(first["loc"][-1])
        parent = first["loc"][:-1]
        fields = _known_fields(parent, root or SweepConfig)
        close = difflib.get_close_matches(key, fields, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else f"; expected one of {fields}"
        hint = hint if fields else ""
        return f"{location}: unknown key{hint}"
    received = first.get("input")
    shown = (
        ""
        if isinstance(received, dict) or first["type"].startswith("value_error")
        else (f", got {excerpt(received)}")
    )
    return f"{location}: {message}{shown}"


def _known_fields(location: tuple[Any, ...], root: type[BaseModel]) -> list[str]:
    tagged: dict[str, type[BaseModel]] = {"~range": Range, "~choices": Choices, "~auto": AutoRange}
    if location and str(location[-1]) in tagged:  # a space entry: the form it was read as
        return list(tagged[str(location[-1])].model_fields)
    model: Any = root
    for part in location:
        field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        models = [
            kind
            for kind in (field.annotation, *get_args(field.annotation))  # X or X | None
            if isinstance(kind, type) and issubclass(kind, BaseModel)
        ]
        if not models:
            return []
        model = models[0]
    return list(model.model_fields)


def parse_config(data: dict[str, Any], source: str = "sweep") -> SweepConfig:
    """Validate a loaded mapping against the schema; :class:`UsageError` with the key's path.

    What the schema alone can tell: types, ranges, key names, a key both searched and fixed,
    features a workload kind cannot have. Whether the space makes valid schedules and the
    entrypoint imports is the loader's to check (:func:`sweeps.runner.load_config`).
    """
    try:
        config = SweepConfig.model_validate(data)
    except ValidationError as error:
        raise UsageError(f"{source}: {format_error(error)}") from None
    try:
        _check_names("search.space", list(config.search.space))
        _check_names("scheduler", list(config.scheduler))
        overlap = sorted(set(config.search.space) & set(config.scheduler))
        if overlap:
            raise ValueError(
                f"scheduler.{overlap[0]}: also in search.space; a key is either searched or fixed"
            )
        if config.execution.fused_trials != 1 and config.workload.entrypoint is not None:
            raise ValueError(f"execution.fused_trials: {FUSED_NEEDS_TASK}")
        if config.execution.fused_trials != 1 and config.workload.command is not None:
            raise ValueError(
                "execution.fused_trials: fused trials stack the model of a task the project "
                "trains; a command runs its own loop in its own process, got "
                f"{config.execution.fused_trials!r}"
            )
        if config.auto_keys and config.workload.command is not None:
            raise ValueError(
                f"search.space.{config.auto_keys[0]}: `auto` needs a range test, which trains a "
                "task or a training function; give a range for a command workload"
            )
    except ValueError as error:
        raise UsageError(f"{source}: {error}") from None
    return config
