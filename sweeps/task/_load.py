"""Finding a user's code from a sweep file: ``"module:Name"``, the module next to the file."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweeps.task._base import TASK_METHODS, Task


def import_attribute(path: str, key: str, search: Sequence[Path] = ()) -> Any:
    """``package.module:name`` -> the object; ``ValueError`` naming ``key`` and what failed.

    The current directory and ``search`` (the sweep file's directory) are tried as import roots
    too, so a module next to the sweep file works without installing it.
    """
    module_name, _, attribute = path.partition(":")
    for root in (Path.cwd(), *search):
        if str(root) not in sys.path:
            sys.path.append(str(root))
    _share_with_workers(search)
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or the module itself raising
        raise ValueError(
            f"{key}: cannot import {module_name!r}: {type(error).__name__}: {error}"
        ) from None
    found = getattr(module, attribute, None)
    if found is None:
        raise ValueError(f"{key}: {module_name!r} has no {attribute!r}")
    return found


def _share_with_workers(search: Sequence[Path]) -> None:
    """Put ``search`` on ``PYTHONPATH`` too, so ``run --workers N``'s processes find the module."""
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    extra = [str(root) for root in search if str(root) not in paths]
    if extra:
        os.environ["PYTHONPATH"] = os.pathsep.join([p for p in paths if p] + extra)


def import_task(path: str, search: Sequence[Path] = ()) -> type[Task]:
    """``module:Class`` -> a :class:`Task` subclass, checked to define every method it needs."""
    found = import_attribute(path, "workload.task", search)
    return check_task_class(found, path)


def check_task_class(found: Any, path: str) -> type[Task]:
    """``found`` if it is a usable :class:`Task` subclass; one-line ``ValueError`` if not."""
    name = getattr(found, "__name__", repr(found))
    if not (inspect.isclass(found) and issubclass(found, Task)):
        raise ValueError(
            f"workload.task: {name} ({path}) must be a class that subclasses sweeps.Task"
        )
    for method in TASK_METHODS:
        if getattr(getattr(found, method, None), "__isabstractmethod__", False):
            raise ValueError(f"workload.task: {name}.{method}() is missing (sweeps.Task needs it)")
    metric = getattr(found, "metric", None)
    if not isinstance(metric, str) or not metric:
        raise ValueError(
            f"workload.task: {name}.metric must name the metric evaluate() returns, got {metric!r}"
        )
    if found.direction not in ("maximize", "minimize"):
        raise ValueError(
            f"workload.task: {name}.direction must be 'maximize' or 'minimize', "
            f"got {found.direction!r}"
        )
    return found
