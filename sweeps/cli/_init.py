"""``onecycle init``: write a sweep file with the project's recipe for what the user trains."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from sweeps.config import SweepConfig
from sweeps.config._starter import Starter, StarterKind, direction_of, starter_text
from sweeps.errors import UsageError, one_line

_KINDS: tuple[StarterKind, ...] = ("builtin", "task", "entrypoint", "command")


@click.command("init")
@click.argument("out", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--builtin",
    type=click.Choice(["digits", "breast_cancer", "synthetic_ctr"]),
    help="A built-in workload.",
)
@click.option("--task", metavar="MODULE:CLASS", help="Your sweeps.Task (fused trials, auto).")
@click.option(
    "--entrypoint", metavar="MODULE:FUNCTION", help="Your training function (ctx) -> metrics."
)
@click.option("--command", "command_line", metavar="CMD", help="Your script, launched per trial.")
@click.option("--name", help="The sweep's name (default: from what it trains).")
@click.option("--trials", type=click.IntRange(min=1), default=24, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--metric", help="The metric your code reports (entrypoint, command: val_loss).")
@click.option("--direction", type=click.Choice(["maximize", "minimize"]))
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def init_command(
    out: Path | None,
    name: str | None,
    trials: int,
    epochs: int,
    batch_size: int,
    metric: str | None,
    direction: Any,
    force: bool,
    command_line: str | None,
    **targets: str | None,
) -> None:
    """Write a sweep file (OUT, default NAME.yaml) with the recommended 1-Cycle search."""
    given = {**targets, "command": command_line}
    chosen = [(kind, given[kind]) for kind in _KINDS if given[kind]]
    if len(chosen) != 1:
        flags = ", ".join(f"--{kind}" for kind in _KINDS)
        raise UsageError(f"init: exactly one of {flags} says what to train, got {len(chosen)}")
    kind, target = chosen[0]
    if metric and not direction:
        try:
            direction = direction_of(metric)
        except ValueError as error:
            raise UsageError(str(error)) from None
    starter = Starter(
        kind,
        str(target),
        name or _default_name(kind, str(target)),
        trials,
        epochs,
        batch_size,
        metric,
        direction,
    )
    path = out or Path(f"{starter.name}.yaml")
    if path.exists() and not force:
        raise UsageError(f"OUT: {path} exists; --force replaces it")
    if not path.parent.is_dir():
        raise UsageError(f"OUT: no such directory {str(path.parent)!r}, got {str(path)!r}")
    # Checked where it will live (a task or a script is found next to the file), then moved in.
    partial = path.with_name(f".{path.name}.{os.getpid()}.yaml")
    try:
        partial.write_text(starter_text(starter))
        config = _checked(partial, path)
        updates = _updates(config)
        if updates:
            partial.write_text(starter_text(dataclasses.replace(starter, updates=updates)))
            config = _checked(partial, path)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    auto = " with `auto` LR bounds from a range test" if config.auto_keys else ""
    Console().print(
        f"wrote {path}: sweep {config.name}, {config.search.n_trials} trials of "
        f"{config.workload.epochs} epochs, TPE and Hyperband{auto}\nrun it: onecycle run {path}"
    )


def _checked(partial: Path, path: Path) -> SweepConfig:
    """The file at ``partial`` validated as the sweep file ``path`` (errors name ``path``)."""
    from sweeps.config import load_mapping
    from sweeps.runner import parse_config

    return parse_config(load_mapping(partial), str(path), path.resolve().parent)


def _updates(config: SweepConfig) -> int:
    """How many updates a trial makes, where the project runs the loop (else 0)."""
    if not (config.workload.builtin or config.workload.task):
        return 0
    import torch

    from sweeps.runner import workload_factory

    try:
        runner = workload_factory(config, torch.device("cpu"))()
        return runner.planned_steps(config.workload.epochs)
    except Exception as error:  # the user's constructor: named, not a traceback
        raise UsageError(
            f"workload.{config.workload.kind}: building it to count a trial's updates failed: "
            f"{one_line(f'{type(error).__name__}: {error}')}"
        ) from None


def _default_name(kind: StarterKind, target: str) -> str:
    """``digits-onecycle``, ``cnn_task-onecycle``; a command's script name."""
    if kind == "builtin":
        stem = target
    elif kind == "command":
        words = [w for w in target.split() if not w.startswith("-")]
        scripts = [w for w in words if w.endswith(".py")] or words[-1:] or ["command"]
        stem = Path(scripts[0]).stem
    else:
        stem = target.split(":", 1)[0].rsplit(".", 1)[-1]
    cleaned = "".join(c if c.isalnum() or c in "_.-" else "-" for c in stem).strip("-._")
    return f"{cleaned or 'sweep'}-onecycle"
