"""The only module that calls ``trial.suggest_*``: a sweep file's space as Optuna parameters.

The space is parametrised so that every sampled configuration is a valid OneCycle schedule:

* ``cycle_min_lr`` / ``cycle_max_lr`` (and ``cycle_min_mom`` / ``cycle_max_mom``), both searched:
  the maximum is sampled in its range, and the minimum as a *fraction* (Optuna parameter
  ``cycle_min_lr_fraction`` in [0, 1]) of the way from the low end of its range to
  ``min(its high end, the sampled maximum)``, on a log scale when the range is. Every value of
  the pair is reachable, the distributions Optuna sees never change, and minimum <= maximum
  always.
* One searched and one fixed: the searched range is cut to the valid part up front.
* Everything else is sampled as declared, and the file is refused when some combination of its
  range ends and choices would not be a valid schedule (stairs longer than a step size, minimum
  above maximum, momentum of 1), so a trial never fails because of the sampler.

The DeepSpeed values (sampled, derived and fixed) are what :meth:`SearchSpace.suggest` returns;
the objective records them as a user attribute and as MLflow params.
"""

from __future__ import annotations

import itertools
import math
import random
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from schedulers.schedules import OneCycleSchedule
from sweeps.config import SCHEDULE_KEYS, Choices, Range, SweepConfig
from sweeps.errors import excerpt
from sweeps.space._auto_bounds import resolve_auto

if TYPE_CHECKING:
    import optuna

INTEGER_KEYS = frozenset(
    {
        "cycle_first_step_size",
        "cycle_second_step_size",
        "cycle_first_stair_count",
        "cycle_second_stair_count",
        "decay_step_size",
    }
)
PAIRS = (("cycle_min_lr", "cycle_max_lr"), ("cycle_min_mom", "cycle_max_mom"))
DEEPSPEED_DEFAULTS: dict[str, Any] = {"cycle_min_mom": 0.8, "cycle_max_mom": 0.9}
MAX_CORNERS = 4096


def fraction_name(low_key: str) -> str:
    """Optuna's name for a paired minimum's fraction parameter."""
    return f"{low_key}_fraction"


def _interpolate(low: float, high: float, fraction: float, log: bool) -> float:
    if high <= low:
        return low
    if log:
        return math.exp(math.log(low) + fraction * (math.log(high) - math.log(low)))
    return low + fraction * (high - low)


def _inverse(low: float, high: float, value: float, log: bool) -> float:
    if high <= low:
        return 0.0
    if log:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


class _Draw:
    """Where values come from: an Optuna trial, or a fixed assignment (corners, enqueue)."""

    def __init__(
        self, trial: optuna.trial.BaseTrial | None, fixed: dict[str, Any] | None = None
    ) -> None:
        self.trial = trial
        self.fixed = fixed or {}

    def number(
        self, name: str, low: float, high: float, log: bool, step: float | None, integer: bool
    ) -> float:
        if self.trial is None:
            return self.fixed[name]  # type: ignore[no-any-return]
        if integer:
            return self.trial.suggest_int(name, int(low), int(high), step=int(step or 1), log=log)
        return self.trial.suggest_float(name, low, high, log=log, step=step)

    def choice(self, name: str, choices: list[Any]) -> Any:
        if self.trial is None:
            return self.fixed[name]
        return self.trial.suggest_categorical(name, choices)


class SearchSpace:
    """A validated search space; :meth:`suggest` gives a trial's DeepSpeed OneCycle params."""

    def __init__(self, config: SweepConfig) -> None:
        config = resolve_auto(config)
        self.config = config
        self._range, self._choices = Range, Choices
        self.space = dict(config.search.space)
        self.fixed = dict(config.scheduler)
        for key in ("cycle_min_lr", "cycle_max_lr"):
            if key not in self.space and key not in self.fixed:
                raise ValueError(
                    f"search.space.{key}: required; give a range, choices, or a fixed value "
                    "(in search.space or scheduler)"
                )
        for key, entry in self.space.items():
            if isinstance(entry, Range) and key in INTEGER_KEYS and not _integral(entry):
                raise ValueError(
                    f"search.space.{key}: an integer parameter needs integer low/high/step, "
                    f"got low={entry.low}, high={entry.high}, step={entry.step}"
                )
        self._check_pairs()
        self._check_corners()
        self.enqueued = [self.optuna_params(entry, i) for i, entry in enumerate(config.enqueue)]
        if config.search.sampler == "grid":
            self.grid = self._grid()
            self._check_grid_size()

    # -- sampling -------------------------------------------------------------------------
    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Sample one trial's full set of DeepSpeed OneCycle parameters."""
        return self._draw(_Draw(trial))

    def _entry(self, key: str) -> Any:
        if key in self.space:
            return self.space[key]
        if key in self.fixed:
            return self.fixed[key]
        return DEEPSPEED_DEFAULTS.get(key)

    def _value(
        self,
        draw: _Draw,
        key: str,
        entry: Any,
        low: float | None = None,
        high: float | None = None,
    ) -> Any:
        if isinstance(entry, self._range):
            lo = entry.low if low is None else max(entry.low, low)
            hi = entry.high if high is None else min(entry.high, high)
            return draw.number(key, lo, hi, entry.log, entry.step, key in INTEGER_KEYS)
        if isinstance(entry, self._choices):
            return draw.choice(key, list(entry.choices))
        return entry

    def _draw(self, draw: _Draw) -> dict[str, Any]:
        params: dict[str, Any] = dict(self.fixed)
        for low_key, high_key in PAIRS:
            low_entry, high_entry = self._entry(low_key), self._entry(high_key)
            if low_entry is None and high_entry is None:
                continue
            low_range = isinstance(low_entry, self._range)
            high_range = isinstance(high_entry, self._range)
            if low_range and high_range:
                high = self._value(draw, high_key, high_entry)
                fraction = draw.number(fraction_name(low_key), 0.0, 1.0, False, None, False)
                top = min(low_entry.high, high)
                low = float(f"{_interpolate(low_entry.low, top, fraction, low_entry.log):.12g}")
                params[low_key], params[high_key] = min(max(low, low_entry.low), top), high
            elif low_range:
                high = self._value(draw, high_key, high_entry)
                params[high_key] = high
                params[low_key] = self._value(draw, low_key, low_entry, high=high)
            elif high_range:
                low = self._value(draw, low_key, low_entry)
                params[low_key] = low
                params[high_key] = self._value(draw, high_key, high_entry, low=low)
            else:
                params[low_key] = self._value(draw, low_key, low_entry)
                params[high_key] = self._value(draw, high_key, high_entry)
        paired = {key for pair in PAIRS for key in pair}
        for key, entry in self.space.items():
            if key not in paired:
                params[key] = self._value(draw, key, entry)
        return {key: _plain(value, key) for key, value in params.items()}

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Every searched parameter's Optuna distribution, at its widest.

        What a sequence sampler lays its points over (:mod:`sweeps.space._sobol`). A range cut
        by the other end of its pair is widest with the pair's minimum at its smallest and its
        maximum at its largest, so that is the probe.
        """
        import optuna

        lows = {low for low, _ in PAIRS}
        probe: dict[str, Any] = {}
        for name, values in self._corner_names():
            numbers = [v for v in values if isinstance(v, (int, float)) and v is not True]
            if not numbers or len(numbers) < len(values):
                probe[name] = values[0]
            else:
                probe[name] = min(numbers) if name in lows else max(numbers)
        trial = optuna.trial.FixedTrial(probe)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.suggest(trial)
        return dict(trial.distributions)

    # -- checks ---------------------------------------------------------------------------
    def _check_grid_size(self) -> None:
        """Each grid point is trained once: a sweep asking for more trials is refused."""
        points = math.prod(len(values) for values in self.grid.values())
        enqueued = len(self.config.enqueue)
        n_trials = self.config.search.n_trials
        if n_trials > points + enqueued:
            extra = f" plus {enqueued} enqueued" if enqueued else ""
            raise ValueError(
                f"search.n_trials: the grid has {points} points{extra}, so at most "
                f"{points + enqueued} trials are distinct; got {n_trials}"
            )

    def _check_pairs(self) -> None:
        for low_key, high_key in PAIRS:
            low, high = self._entry(low_key), self._entry(high_key)
            low_min = _bound(low, self._range, self._choices, largest=False)
            high_min = _bound(high, self._range, self._choices, largest=False)
            if isinstance(low, self._range) and isinstance(high, self._range):
                if low.low > high.low:
                    raise ValueError(
                        f"search.space.{low_key}.low ({low.low}) must be <= "
                        f"search.space.{high_key}.low ({high.low}), so that every sampled "
                        f"{high_key} leaves a valid {low_key}"
                    )
            elif low_min is not None and high_min is not None:
                low_max = _bound(low, self._range, self._choices, largest=True)
                if isinstance(low, self._range) and low.low > high_min:
                    raise ValueError(
                        f"search.space.{low_key}: its low end {low.low} is above the smallest "
                        f"{high_key} ({high_min})"
                    )
                if isinstance(high, self._range) and (low_min > high.high):
                    raise ValueError(
                        f"search.space.{high_key}: its high end {high.high} is below {low_key} "
                        f"({low_min})"
                    )
                if (
                    not isinstance(low, self._range)
                    and not isinstance(high, self._range)
                    and (low_max is not None and low_max > high_min)
                ):
                    raise ValueError(
                        f"search.space.{low_key}: a value ({low_max}) is above a {high_key} "
                        f"value ({high_min}); every combination must have {low_key} <= {high_key}"
                    )

    def _corner_names(self) -> list[tuple[str, list[Any]]]:
        names: list[tuple[str, list[Any]]] = []
        for low_key, high_key in PAIRS:
            low, high = self._entry(low_key), self._entry(high_key)
            if isinstance(low, self._range) and isinstance(high, self._range):
                names.append((fraction_name(low_key), [0.0, 1.0]))
        for key, entry in self.space.items():
            if isinstance(entry, self._range):
                names.append((key, [entry.low, entry.high]))
            elif isinstance(entry, self._choices):
                names.append((key, list(entry.choices)))
        return names

    def _corners(self) -> Iterator[dict[str, Any]]:
        names = self._corner_names()
        total = math.prod(len(values) for _, values in names) if names else 1
        if total <= MAX_CORNERS:
            for combo in itertools.product(*(values for _, values in names)):
                yield dict(zip((n for n, _ in names), combo, strict=True))
            return
        rng = random.Random(0)
        for _ in range(MAX_CORNERS):
            yield {name: rng.choice(values) for name, values in names}

    def _check_corners(self) -> None:
        for corner in self._corners():
            params = self._draw(_CornerDraw(corner))
            try:
                OneCycleSchedule(**params)
            except (ValueError, TypeError) as error:
                shown = ", ".join(f"{k}={v!r}" for k, v in sorted(params.items()))
                raise ValueError(
                    f"search.space: some sampled configurations would be invalid ({error}), "
                    f"for example {shown}"
                ) from None

    def known(self, deepspeed: dict[str, Any]) -> dict[str, Any]:
        """The full DeepSpeed params of a known config (fixed values and defaults added)."""
        import optuna

        return self.suggest(optuna.trial.FixedTrial(self.optuna_params(deepspeed)))

    # -- enqueue and grid -----------------------------------------------------------------
    def optuna_params(self, deepspeed: dict[str, Any], index: int = 0) -> dict[str, Any]:
        """Translate a known DeepSpeed config into the Optuna parameters that reproduce it."""
        where = f"enqueue[{index}]"
        out: dict[str, Any] = {}
        for key, value in deepspeed.items():
            if key not in SCHEDULE_KEYS:
                raise ValueError(f"{where}.{key}: not a OneCycle parameter")
            if key not in self.space:
                if key in self.fixed and self.fixed[key] != value:
                    raise ValueError(
                        f"{where}.{key}: fixed at {self.fixed[key]!r} in scheduler, "
                        f"got {excerpt(value)}"
                    )
                continue
            entry = self.space[key]
            if isinstance(entry, self._range) and not entry.low <= value <= entry.high:
                raise ValueError(
                    f"{where}.{key}: {excerpt(value)} is outside the searched range "
                    f"[{entry.low}, {entry.high}]"
                )
            if isinstance(entry, self._choices) and value not in entry.choices:
                raise ValueError(f"{where}.{key}: {excerpt(value)} is not one of {entry.choices}")
            out[key] = value
        for low_key, high_key in PAIRS:
            low, high = self.space.get(low_key), self.space.get(high_key)
            if isinstance(low, self._range) and isinstance(high, self._range) and low_key in out:
                if high_key not in out:
                    raise ValueError(f"{where}: give {high_key} together with {low_key}")
                top = min(low.high, out[high_key])
                if out[low_key] > top:
                    raise ValueError(
                        f"{where}.{low_key}: {out[low_key]} is above {high_key} ({out[high_key]})"
                    )
                out[fraction_name(low_key)] = _inverse(low.low, top, out.pop(low_key), low.log)
        return out

    def _grid(self) -> dict[str, list[Any]]:
        grid: dict[str, list[Any]] = {}
        for name, values in self._corner_names():
            if name.endswith("_fraction"):
                raise ValueError(
                    "search.sampler: grid cannot search both ends of a pair as ranges; give "
                    f"{name.removesuffix('_fraction')} choices or a fixed value"
                )
            entry = self.space[name]
            if isinstance(entry, self._range):
                if entry.step is None:
                    raise ValueError(
                        f"search.space.{name}: the grid sampler needs `step` on ranges"
                    )
                count = round((entry.high - entry.low) / entry.step) + 1
                values = [entry.low + i * entry.step for i in range(count)]
                if name in INTEGER_KEYS:
                    values = [int(v) for v in values]
            grid[name] = values
        return grid


class _CornerDraw(_Draw):
    """Corners give range ends and every choice; clamped to the cut range like a trial."""

    def __init__(self, corner: dict[str, Any]) -> None:
        super().__init__(None, corner)

    def number(
        self, name: str, low: float, high: float, log: bool, step: float | None, integer: bool
    ) -> float:
        value = float(self.fixed.get(name, low))
        value = min(max(value, low), high)
        return int(value) if integer else value


def _integral(entry: Range) -> bool:
    return all(float(v).is_integer() for v in (entry.low, entry.high, entry.step or 1))


def _bound(entry: Any, range_type: type, choices_type: type, largest: bool) -> float | None:
    """The smallest (or largest) number an entry can take, or None for non-numeric ones."""
    if isinstance(entry, range_type):
        return float(entry.high if largest else entry.low)  # type: ignore[attr-defined]
    if isinstance(entry, choices_type):
        numbers = [c for c in entry.choices if isinstance(c, (int, float))]  # type: ignore[attr-defined]
        if not numbers:
            return None
        return float(max(numbers) if largest else min(numbers))
    return float(entry) if isinstance(entry, (int, float)) else None


def _plain(value: Any, key: str) -> Any:
    if key in INTEGER_KEYS and isinstance(value, float) and value.is_integer():
        return int(value)
    return value
