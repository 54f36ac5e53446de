"""A store setting kept in a file only its owner can read, for jobs a scheduler starts.

A URL with a password on a command line is shown to every user by ``ps`` and ``squeue``, and
an exported variable is kept by the scheduler with the job. ``onecycle submit`` writes the
store's settings (the ``ONECYCLE_*`` variables, one ``NAME=value`` per line) to a file of mode
0600, and the job's workers name only its path in ``ONECYCLE_STORE_FILE``. Like ``ssh`` with a
key file, a file others may read is refused.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from storage.errors import StoreConfigError

ENV_STORE_FILE = "ONECYCLE_STORE_FILE"
#: The variables a store file may set.
KEYS = (
    "ONECYCLE_STORE",
    "ONECYCLE_OPTUNA_STORAGE",
    "ONECYCLE_MLFLOW_URI",
    "ONECYCLE_ARTIFACTS",
    "ONECYCLE_DB_PREFIX",
)


def write_store_file(path: Path, settings: Mapping[str, str]) -> Path:
    """Write ``settings`` to ``path``, readable and writable by its owner only."""
    unknown = sorted(set(settings) - set(KEYS))
    if unknown:
        raise ValueError(f"not store settings: {unknown}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an existing file keeps its mode otherwise
        handle.writelines(f"{key}={value}\n" for key, value in settings.items() if value)
    partial.replace(path)
    return path


def read_store_file(path: str) -> dict[str, str]:
    """The settings in the store file at ``path`` (see the module docstring).

    Raises:
        StoreConfigError: the file is missing, others may read it, or a line is not a setting.
    """
    try:
        mode = os.stat(path).st_mode
        text = Path(path).read_text()
    except OSError as error:
        raise StoreConfigError(
            f"`{ENV_STORE_FILE}` must name a readable store file, got {path!r} ({error.strerror})"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StoreConfigError(
            f"`{ENV_STORE_FILE}`: the store file must be readable by its owner only (mode "
            f"0600: it may hold a password), got mode {stat.S_IMODE(mode):04o} for {path!r}"
        )
    settings = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or key.strip() not in KEYS:
            raise StoreConfigError(
                f"`{ENV_STORE_FILE}`: line {number} of {path!r} must be NAME=value with NAME "
                f"one of {', '.join(KEYS)}, got name {key.strip()[:40]!r}"
            )
        settings[key.strip()] = value.strip()
    return settings
