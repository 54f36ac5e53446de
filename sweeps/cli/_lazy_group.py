"""A click group whose commands are imported only when run, so ``--help`` answers at once.

Each command lives in its own module, which imports what it needs (Optuna, torch, MLflow) at
the top or inside the command. Listing commands for ``--help`` would import every module to
read its one-line help; the group keeps those lines itself instead, and a test checks that
they are the commands' own.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

import click


class Lazy(NamedTuple):
    """Where a command lives and the line ``--help`` shows for it."""

    module: str
    attribute: str
    short_help: str


class LazyGroup(click.Group):
    """A group with commands loaded from ``lazy`` on first use (see the module docstring)."""

    def __init__(self, *args: Any, lazy: dict[str, Lazy] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, loaded or not."""
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, importing its module the first time it is asked for."""
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(load(self.lazy[cmd_name]), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the kept lines: nothing is imported to print ``--help``."""
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                command = self.commands[name]
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(formatter.width)))
            else:
                rows.append((name, self.lazy[name].short_help))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def load(entry: Lazy) -> click.Command:
    """Import ``entry``'s module and return its command object."""
    command = getattr(importlib.import_module(entry.module), entry.attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{entry.module}.{entry.attribute} is not a click command")
    return command
