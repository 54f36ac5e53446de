"""One store setting for Optuna's study storage and MLflow's backend (issue 3 fills this in).

This package never imports torch; it is the persistence layer that ``sweeps`` wires to the
schedulers.
"""

from __future__ import annotations

__all__: list[str] = []
