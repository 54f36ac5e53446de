"""Hyperparameter sweeps over DeepSpeed's 1-Cycle schedule, and the ``onecycle`` CLI.

This is the one package that wires the others together: ``schedulers`` for the schedules and
``storage`` for where studies and runs live.
"""

from __future__ import annotations

__version__ = "0.1.0"
