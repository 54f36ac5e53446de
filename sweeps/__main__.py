"""``python -m sweeps`` runs the ``onecycle`` CLI."""

from __future__ import annotations

from sweeps.cli import entry

if __name__ == "__main__":
    entry()
