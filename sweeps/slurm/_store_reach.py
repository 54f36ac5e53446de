"""Whether a submitted job can reach the store: a server every node reaches, with its password.

Workers on other nodes cannot open a SQLite file on this machine's disk, connect to this
machine's loopback address or Unix socket, or read this shell's ``PGPASSWORD``. The first is
refused (``--allow-sqlite`` when every node shares the filesystem), the second is warned of
(a one-node cluster is fine), and the third is written into the job's store file, which only
its owner can read.
"""

from __future__ import annotations

import getpass
import ipaddress
from collections.abc import Mapping
from urllib.parse import quote, urlsplit, urlunsplit

from storage.redact import password_of
from storage.spec import ENV_MLFLOW, ENV_OPTUNA, ENV_STORE, StoreSpec
from sweeps.errors import UsageError

_SERVER_SCHEMES = ("postgresql", "postgres", "http", "https", "mysql", "mssql", "onecycle")


def refuse_local_store(spec: StoreSpec, allow_sqlite: bool) -> None:
    """Refuse a store part that is a file on this machine, naming the flag that set it."""
    if allow_sqlite:
        return
    local = [
        (flag, url)
        for flag, url in (("--optuna-storage", spec.optuna_url), ("--mlflow-uri", spec.mlflow_uri))
        if url and not _is_server(url)
    ]
    if not local:
        return
    flag, url = local[0]
    if spec.kind == "directory" and url.startswith(f"sqlite:///{spec.directory}"):
        flag, url = "--store", spec.describe()
    raise UsageError(
        f"{flag}: SLURM workers on several nodes need a PostgreSQL store (or a storage proxy, "
        "an MLflow server) that every node reaches; a SQLite store is files on one machine's "
        f"disk, got {url} (--allow-sqlite if every node shares that filesystem)"
    )


def loopback_hosts(spec: StoreSpec) -> list[str]:
    """The store's hosts that only this machine reaches (loopback addresses, Unix sockets).

    Example:
        >>> from storage import resolve_store
        >>> loopback_hosts(resolve_store("postgresql://ann@127.0.0.1:5432/", env={}))
        ['127.0.0.1']
    """
    found = []
    for url in (spec.optuna_url, spec.mlflow_uri):
        if not url or not _is_server(url):
            continue
        host = urlsplit(url).hostname or ""
        where = host or "a Unix socket"
        if (not host or _is_loopback(host)) and where not in found:
            found.append(where)
    return found


def settings_with_password(settings: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """``settings`` with ``PGPASSWORD`` (if set) in each PostgreSQL URL that has no password.

    The job never gets ``PGPASSWORD`` in its environment; its store file (mode 0600) is where
    the password goes, as it does when the URL carries one.

    Example:
        >>> settings = {"ONECYCLE_STORE": "postgresql://ann@db/"}
        >>> settings_with_password(settings, {"PGPASSWORD": "pw"})
        {'ONECYCLE_STORE': 'postgresql://ann:pw@db/'}
    """
    password = env.get("PGPASSWORD")
    result = dict(settings)
    if not password:
        return result
    for key in (ENV_STORE, ENV_OPTUNA, ENV_MLFLOW):
        value = result.get(key, "")
        if value.split("://", 1)[0].split("+", 1)[0] in ("postgresql", "postgres") and (
            password_of(value) is None
        ):
            result[key] = _with_password(value, password, env)
    return result


def _with_password(url: str, password: str, env: Mapping[str, str]) -> str:
    """``url`` with ``password`` percent-encoded after its user (PGUSER or this login if none).

    Example:
        >>> _with_password("postgresql://ann@db/", "a b@c", {})
        'postgresql://ann:a%20b%40c@db/'
    """
    parts = urlsplit(url)
    user, at, host = parts.netloc.rpartition("@")
    if not at:
        user = quote(env.get("PGUSER") or getpass.getuser(), safe="")
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _is_server(url: str) -> bool:
    return url.split("://", 1)[0].split("+", 1)[0].lower() in _SERVER_SCHEMES


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
