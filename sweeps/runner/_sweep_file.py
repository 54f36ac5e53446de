"""Reading a sweep file: the schema first, then what only the features can check.

The schema (:mod:`sweeps.config`) knows types and names; whether every sampled configuration
is a valid OneCycle schedule is the search space's to say, and whether an entrypoint imports is
the function runner's. Loading checks all three before anything touches a store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweeps.config import SweepConfig
from sweeps.config import parse_config as parse_schema
from sweeps.config._files import load_mapping
from sweeps.errors import UsageError
from sweeps.space import check_space
from sweeps.trials import import_entrypoint

__all__ = ["load_config", "parse_config"]


def parse_config(
    data: dict[str, Any], source: str = "sweep", base: Path | None = None
) -> SweepConfig:
    """Validate a loaded sweep mapping; :class:`UsageError` naming the key on any problem.

    ``base`` (the sweep file's directory) is where an entrypoint module may live.
    """
    config = parse_schema(data, source)
    try:
        check_space(config)
        if config.workload.entrypoint:
            import_entrypoint(config.workload.entrypoint, [base] if base else [])
    except ValueError as error:
        raise UsageError(f"{source}: {error}") from None
    return config


def load_config(path: Path) -> SweepConfig:
    """Read and validate a sweep file (YAML; JSON is YAML too)."""
    return parse_config(load_mapping(path), str(path), path.resolve().parent)
