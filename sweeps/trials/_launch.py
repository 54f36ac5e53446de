"""What a command trial is launched with: its files, its command line, its environment.

The environment is the worker's without anything that could reach the store: a script gets
its trial through the channel, never the store's URL or password. And when it fails, the
line of its stderr that says why (:func:`failure_line`).
"""

from __future__ import annotations

import json
import re
import shlex
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import schedulers
from storage.redact import password_of, scrub

#: Environment variables a script never gets (the store, MLflow's and PostgreSQL's logins).
_HIDDEN = re.compile(r"^(ONECYCLE_|MLFLOW_|PGPASS|PGSERVICE|DATABASE_URL$)")
_USERINFO = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:[^@/\s]*@")
_EXCEPTION = re.compile(
    r"^(?:\[[^\]]*rank\d+\]:\s*)?([A-Za-z_][\w.]*(?:Error|Exception|Exit)\b.*)$"
)
_RANK_PREFIX = re.compile(r"^\[[^\]]*rank\d+\]:\s*")


def split_command(command: str | Sequence[str]) -> list[str]:
    """A string is split like a shell would (no shell runs it); a list is taken as is."""
    return shlex.split(command) if isinstance(command, str) else list(command)


def free_port() -> int:
    """A TCP port free right now on this machine, for the trial's rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TrialFiles:
    """A command trial's own directory: its configs, its logs, the script's output folder."""

    root: Path
    params: Path
    deepspeed_config: Path | None
    output_dir: Path
    stdout: Path
    stderr: Path


def prepare_files(
    trials_root: Path, number: int, schedule: Mapping[str, Any], base_config: Path | None
) -> TrialFiles:
    """Write the trial's params and DeepSpeed config (the base with its scheduler block)."""
    root = trials_root / f"trial-{number:04d}"
    suffix = 1
    while root.exists():  # a sweep made again under the same name: never reuse a directory
        suffix += 1
        root = trials_root / f"trial-{number:04d}-{suffix}"
    (root / "output").mkdir(parents=True)
    params = schedulers.with_defaults("OneCycle", dict(schedule))
    (root / "params.json").write_text(json.dumps(params, indent=2))
    config_path = None
    if base_config is not None:
        config = json.loads(base_config.read_text())
        config["scheduler"] = {"type": "OneCycle", "params": params}
        config_path = root / "ds_config.json"
        config_path.write_text(json.dumps(config, indent=2))
    return TrialFiles(
        root,
        root / "params.json",
        config_path,
        root / "output",
        root / "stdout.log",
        root / "stderr.log",
    )


def fill_placeholders(argv: Sequence[str], files: TrialFiles, number: int, port: int) -> list[str]:
    """The command line with ``{deepspeed_config}``, ``{params}`` and the rest filled in."""
    values = {
        "deepspeed_config": str(files.deepspeed_config or ""),
        "params": str(files.params),
        "trial": str(number),
        "master_port": str(port),
        "output_dir": str(files.output_dir),
    }
    filled = []
    for arg in argv:
        for name, value in values.items():
            arg = arg.replace("{" + name + "}", value)
        filled.append(arg)
    return filled


def script_environment(
    base: Mapping[str, str], channel: str, gpus: Sequence[str], secrets: Sequence[str]
) -> dict[str, str]:
    """The worker's environment without the store, plus the trial's channel and GPUs."""
    passwords = [p for p in (password_of(url) for url in secrets) if p]
    env = {
        key: value
        for key, value in base.items()
        if not _HIDDEN.match(key)
        and not _USERINFO.search(value)
        and not any(secret and secret in value for secret in (*secrets, *passwords))
    }
    env["ONECYCLE_TRIAL_CHANNEL"] = channel
    env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    return env


def failure_line(stderr: Path, secrets: Sequence[str]) -> str:
    """The last meaningful line of a script's stderr: its exception if it printed one.

    Launchers print their own summary after a rank's traceback (torchrun's ``ChildFailedError``
    report); the rank's own ``SomeError: message`` line is the one that says what went wrong.
    """
    try:
        lines = stderr.read_text(errors="replace").splitlines()
    except OSError:
        return "no stderr"
    found = ""
    for line in lines:
        match = _EXCEPTION.match(_RANK_PREFIX.sub("", line.strip()))
        if match and not match.group(1).startswith(("torch.distributed.elastic", "ChildFailed")):
            found = match.group(1)
    if not found:
        meaningful = [
            _RANK_PREFIX.sub("", line).strip()
            for line in lines
            if re.search(r"[A-Za-z0-9]", line) and not set(line.strip()) <= set("=-*#_ ")
        ]
        found = meaningful[-1] if meaningful else "it wrote nothing to stderr"
    return scrub(found, *secrets)[:500]
