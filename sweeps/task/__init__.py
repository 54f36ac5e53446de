"""The public task protocol (``sweeps.Task``) and how a sweep finds and checks a user's task.

A room of its own below both the built-in workloads (which are tasks) and the trial runners
(which run them); see ``docs/tasks.md``.
"""

from __future__ import annotations

from sweeps.task._base import TASK_METHODS, Direction, Task
from sweeps.task._checks import build_model, check_task, first_batch, make_task, to_device
from sweeps.task._load import check_task_class, import_attribute, import_task

__all__ = [
    "TASK_METHODS",
    "Direction",
    "Task",
    "build_model",
    "check_task",
    "check_task_class",
    "first_batch",
    "import_attribute",
    "import_task",
    "make_task",
    "to_device",
]
