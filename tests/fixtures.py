"""Builders every test shares: sweep files, free loopback ports, unique database prefixes.

One place, so a change to the sweep-file format or to how tests name their PostgreSQL
databases is made once. Sweep files come in two kinds: :func:`digits_sweep`, a tiny built-in
digits sweep written out in full (the many-worker and resume tests, where every key matters),
and :func:`example_sweep`, one of the shipped ``examples/*.yaml`` shrunk to test size (the tests
that check the examples keep working).
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

#: A small continuous space every sampler but grid can search.
CONTINUOUS_SPACE: dict[str, Any] = {
    "cycle_min_lr": {"low": 1e-3, "high": 1e-2, "log": True},
    "cycle_max_lr": {"low": 1e-2, "high": 0.1, "log": True},
    "cycle_first_step_size": {"low": 5, "high": 20},
}


def free_port() -> int:
    """A loopback port nothing listens on (for a server to start on, or to find closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def command_lines() -> list[str]:
    """Every process's command line on this machine (Linux ``/proc``): secrets must not be there."""
    lines = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            lines.append(entry.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return lines


def servers_of(database: str) -> list[tuple[str, dict[str, str]]]:
    """(command line, environment) of each process whose MLflow backend URI names ``database``:
    an MLflow server and whatever it started, which inherit its environment (Linux ``/proc``)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            raw = (entry / "environ").read_bytes().split(b"\0")
            env = dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
            if database in env.get("MLFLOW_BACKEND_STORE_URI", ""):
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                found.append((line.decode(errors="replace"), env))
    return found


def unique_prefix(label: str = "") -> str:
    """A PostgreSQL database prefix no other test run on the same server uses."""
    middle = f"{label}_" if label else ""
    return f"ocs_test_{middle}{uuid.uuid4().hex[:10]}"


def digits_sweep(
    name: str,
    n_trials: int,
    *,
    sampler: str = "random",
    pruner: str = "none",
    space: dict[str, Any] | None = None,
    epochs: int = 1,
    batch_size: int = 64,
    hidden: Sequence[int] = (16,),
    seed: int | None = 0,
    **sections: Any,
) -> dict[str, Any]:
    """A built-in digits sweep, CPU, small enough that a trial takes well under a second.

    ``sections`` adds top-level keys (``scheduler``, ``enqueue``, ``execution``...).
    """
    search: dict[str, Any] = {
        "n_trials": n_trials,
        "sampler": sampler,
        "pruner": pruner,
        "space": dict(CONTINUOUS_SPACE if space is None else space),
    }
    if seed is not None:
        search["seed"] = seed
    config: dict[str, Any] = {
        "name": name,
        "workload": {
            "builtin": "digits",
            "batch_size": batch_size,
            "epochs": epochs,
            "device": "cpu",
            "options": {"hidden": list(hidden)},
        },
        "search": search,
    }
    config.update(sections)
    return config


def example_sweep(
    example: str = "digits", name: str | None = None, **workload: Any
) -> dict[str, Any]:
    """``examples/<example>.yaml`` on the CPU, with ``workload`` keys replaced (and a new name)."""
    config: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())
    if name is not None:
        config["name"] = name
    config["workload"].update(device="cpu", **workload)
    return config


def write_sweep(folder: Path, config: dict[str, Any], file_name: str | None = None) -> Path:
    """Write ``config`` as ``<folder>/<file_name or its name>.yaml``; return the path."""
    path = folder / f"{file_name or config['name']}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
