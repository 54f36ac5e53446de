"""Reading a sweep file: the schema first, then what only the features can check.

The schema (:mod:`sweeps.config`) knows types and names; whether every sampled configuration
is a valid OneCycle schedule is the search space's to say, and whether an entrypoint or a task
class imports is the trial runners'. Loading checks all three before anything touches a store.
A task class's ``metric`` and ``direction`` become the objective's where the file sets none.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from sweeps.config import SweepConfig
from sweeps.config import parse_config as parse_schema
from sweeps.config._files import load_mapping
from sweeps.errors import UsageError
from sweeps.space import check_space

__all__ = ["load_config", "parse_config"]


def parse_config(
    data: dict[str, Any], source: str = "sweep", base: Path | None = None
) -> SweepConfig:
    """Validate a loaded sweep mapping; :class:`UsageError` naming the key on any problem.

    ``base`` (the sweep file's directory) is where an entrypoint or task module may live.
    """
    config = parse_schema(data, source)
    search = [base] if base else []
    try:
        check_space(config)
        if config.workload.entrypoint:
            from sweeps.trials import import_entrypoint  # user code: torch comes with it

            import_entrypoint(config.workload.entrypoint, search)
        if config.workload.task:
            config = _with_task_objective(config, search)
        if config.workload.command is not None:
            config = _with_workdir(config, base)
            _check_command(config)
    except ValueError as error:
        raise UsageError(f"{source}: {error}") from None
    return config


def _with_task_objective(config: SweepConfig, search: list[Path]) -> SweepConfig:
    """The objective's metric and direction from the task class where the file has none."""
    from sweeps.task import import_task

    cls = import_task(config.workload.task or "", search)
    objective = config.objective
    update: dict[str, Any] = {}
    if objective.metric is None:
        update["metric"] = cls.metric
    if "direction" not in objective.model_fields_set:
        update["direction"] = cls.direction
    if not update:
        return config
    filled = objective.model_copy(update=update)
    return config.model_copy(update={"objective": filled})


def _with_workdir(config: SweepConfig, base: Path | None) -> SweepConfig:
    """The command's directory made absolute (the sweep file's, unless it says another)."""
    workload = config.workload
    workdir = Path(workload.workdir or ".")
    if not workdir.is_absolute():
        workdir = ((base or Path.cwd()) / workdir).resolve()
    return config.model_copy(
        update={"workload": workload.model_copy(update={"workdir": str(workdir)})}
    )


def _check_command(config: SweepConfig) -> None:
    """The program is there and the base DeepSpeed config is a JSON mapping, before any trial."""
    workload = config.workload
    workdir = Path(workload.workdir or ".")
    if not workdir.is_dir():
        raise ValueError(f"workload.workdir: no such directory, got {str(workdir)!r}")
    from sweeps.trials import split_command

    program = split_command(workload.command or "")[0]
    local = workdir / program
    if shutil.which(program) is None and not (os.sep in program and local.is_file()):
        raise ValueError(f"workload.command: program {program!r} not found on PATH")
    if workload.deepspeed_config is not None:
        path = workdir / workload.deepspeed_config
        try:
            load_mapping(path)
        except UsageError as error:
            raise ValueError(f"workload.deepspeed_config: {error}") from None


def load_config(path: Path) -> SweepConfig:
    """Read and validate a sweep file (YAML; JSON is YAML too)."""
    return parse_config(load_mapping(path), str(path), path.resolve().parent)
