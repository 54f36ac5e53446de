"""Turn one store setting into the places Optuna and MLflow keep their data.

A store is either a directory (SQLite files, the default ``./.onecycle``) or a PostgreSQL server
URL, or the address of a storage proxy (``onecycle://host:port``, started by ``onecycle serve``
in front of a PostgreSQL store, :mod:`storage.proxy_server`). Each part can be overridden: the
Optuna storage URL, the MLflow tracking URI (a tracking server over http, as in the team
deployment) and the artifact location. Resolving is pure: it reads the environment but touches
no file or server, so a bad setting fails before anything is created.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from storage.errors import StoreConfigError
from storage.redact import password_of, redact_url
from storage.store_file import ENV_STORE_FILE, read_store_file

DEFAULT_STORE = "./.onecycle"
DEFAULT_DB_PREFIX = "onecycle"
ENV_STORE = "ONECYCLE_STORE"
ENV_OPTUNA = "ONECYCLE_OPTUNA_STORAGE"
ENV_MLFLOW = "ONECYCLE_MLFLOW_URI"
ENV_ARTIFACTS = "ONECYCLE_ARTIFACTS"
ENV_DB_PREFIX = "ONECYCLE_DB_PREFIX"

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
#: A storage proxy's scheme: ``onecycle://host:port`` (``onecycle serve``).
PROXY_SCHEME = "onecycle"
#: The proxy's port when the address names none; its MLflow server listens on the next one.
PROXY_PORT = 13000
PSYCOPG_DRIVER = "postgresql+psycopg"
#: Seconds libpq waits for a server before giving up on one attempt.
CONNECT_TIMEOUT_S = 3
_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
_MLFLOW_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "file")

StoreKind = Literal["directory", "postgresql", "proxy"]


@dataclass(frozen=True)
class StoreSpec:
    """Where everything lives. URLs keep their password; use :meth:`describe` to show one."""

    kind: StoreKind
    setting: str
    directory: Path | None
    server_url: str | None
    optuna_url: str
    mlflow_uri: str
    artifact_location: str
    db_prefix: str
    #: ``optuna_storage`` and ``mlflow_uri`` as given (flag, variable or store file), if given:
    #: what a job's store file repeats, since the resolved URLs are re-rendered.
    optuna_given: str | None = None
    mlflow_given: str | None = None

    def describe(self) -> str:
        """The store setting as it is safe to print (password redacted)."""
        return redact_url(self.setting)

    def __repr__(self) -> str:
        # A dataclass repr would print passwords into logs and tracebacks.
        return (
            f"StoreSpec(kind={self.kind!r}, setting={self.describe()!r}, "
            f"optuna_url={redact_url(self.optuna_url)!r}, "
            f"mlflow_uri={redact_url(self.mlflow_uri)!r}, "
            f"artifact_location={self.artifact_location!r})"
        )


def resolve_store(
    store: str | None = None,
    *,
    optuna_storage: str | None = None,
    mlflow_uri: str | None = None,
    artifacts: str | None = None,
    db_prefix: str | None = None,
    env: Mapping[str, str] | None = None,
) -> StoreSpec:
    """Resolve flags (first) and ``ONECYCLE_*`` variables (second) into a :class:`StoreSpec`.

    A store file named by ``ONECYCLE_STORE_FILE`` (:mod:`storage.store_file`) comes third.

    Example:
        >>> spec = resolve_store("/tmp/s", env={})
        >>> spec.optuna_url, spec.mlflow_uri
        ('sqlite:////tmp/s/optuna.db', 'sqlite:////tmp/s/mlflow.db')
        >>> resolve_store("postgresql://ann:pw@db:5432/", env={}).optuna_url
        'postgresql+psycopg://ann:pw@db:5432/onecycle_optuna?connect_timeout=3'
    """
    environ = os.environ if env is None else env
    if environ.get(ENV_STORE_FILE):  # a job's settings; the job's own variables win
        environ = {**read_store_file(environ[ENV_STORE_FILE]), **environ}
    setting = store or environ.get(ENV_STORE) or DEFAULT_STORE
    prefix = db_prefix or environ.get(ENV_DB_PREFIX) or DEFAULT_DB_PREFIX
    if not _PREFIX.match(prefix):
        raise StoreConfigError(
            f"`db_prefix` must be a lower-case SQL identifier of at most 40 characters "
            f"([a-z_][a-z0-9_]*), got {prefix!r}"
        )
    optuna_override = optuna_storage or environ.get(ENV_OPTUNA)
    mlflow_override = mlflow_uri or environ.get(ENV_MLFLOW)
    artifacts_override = artifacts or environ.get(ENV_ARTIFACTS)

    scheme = setting.split("://", 1)[0].lower() if "://" in setting else None
    directory: Path | None = None
    server_url: str | None = None
    if scheme is None or scheme == "file":
        kind: StoreKind = "directory"
        raw_path = setting.split("://", 1)[1] if scheme == "file" else setting
        try:
            directory = Path(raw_path).expanduser().resolve()
        except RuntimeError as error:  # `~someone` with no such user, or no home at all
            raise StoreConfigError(f"store path {raw_path!r}: {error}") from None
        optuna_url = f"sqlite:///{directory / 'optuna.db'}"
        mlflow_default = f"sqlite:///{directory / 'mlflow.db'}"
        artifacts_default = str(directory / "artifacts")
    elif scheme in POSTGRES_SCHEMES:
        kind = "postgresql"
        server = _postgres_url(setting)
        server_url = server.render_as_string(hide_password=False)
        optuna_url = _database_url(server, f"{prefix}_optuna")
        mlflow_default = _database_url(server, f"{prefix}_mlflow")
        artifacts_default = str(Path(DEFAULT_STORE).resolve() / "artifacts")
    elif scheme == PROXY_SCHEME:
        kind = "proxy"
        host, port = proxy_address(setting)
        optuna_url = f"{PROXY_SCHEME}://{host}:{port}"
        mlflow_default = ""  # the proxy says where (storage.proxy_client.open_proxy_store)
        artifacts_default = ""
    else:
        hint = (
            "; a SQLite file belongs to one part: use --optuna-storage or --mlflow-uri"
            if scheme == "sqlite"
            else ""
        )
        raise StoreConfigError(
            f"`store` must be a directory, a postgresql:// server URL or a storage proxy's "
            f"{PROXY_SCHEME}://host:port, got scheme "
            f"{scheme!r} in {redact_url(setting)!r}{hint}"
        )

    if optuna_override and kind == "proxy":
        raise StoreConfigError(
            "`optuna_storage` cannot be set with a storage proxy: the proxy is the Optuna "
            f"storage (got {redact_url(optuna_override)!r})"
        )
    if optuna_override:
        optuna_url = _checked_sqlalchemy_url("optuna_storage", optuna_override)
    mlflow_final = _checked_mlflow_uri(mlflow_override) if mlflow_override else mlflow_default
    if mlflow_final.startswith(("http://", "https://")):
        # A tracking server stores artifacts where it was told to (--artifacts-destination);
        # clients upload through it. An empty location means "the server's default".
        artifacts_default = ""
    spec = StoreSpec(
        kind=kind,
        setting=setting,
        directory=directory,
        server_url=server_url,
        optuna_url=optuna_url,
        mlflow_uri=mlflow_final,
        artifact_location=artifacts_override or artifacts_default,
        db_prefix=prefix,
        optuna_given=optuna_override or None,
        mlflow_given=mlflow_override or None,
    )
    refuse_shared_database(spec.optuna_url, spec.mlflow_uri)
    return spec


def proxy_address(setting: str) -> tuple[str, int]:
    """The host and port of a ``onecycle://host:port`` proxy address.

    A proxy takes no user, password, path or query: the database's secrets stay with the
    process that serves it.

    Example:
        >>> proxy_address("onecycle://10.0.0.5:13100")
        ('10.0.0.5', 13100)
        >>> proxy_address("onecycle://head")
        ('head', 13000)
    """
    parts = urlsplit(setting)
    try:
        port = parts.port or PROXY_PORT
    except ValueError:
        port = -1
    if (
        not parts.hostname
        or parts.username
        or parts.password
        or parts.path.strip("/")
        or (parts.query or not 0 < port < 65535)
    ):
        raise StoreConfigError(
            f"`store`: a storage proxy address is {PROXY_SCHEME}://host:port (no user, "
            f"password, path or query; port 1-65534), got {redact_url(setting)!r}"
        )
    return parts.hostname, port


def _parsed_as_written(key: str, value: str, url: URL | None) -> None:
    """Refuse a URL whose password the parser would split in the wrong place.

    An unencoded ``@``, ``/``, ``?``, ``#`` or space in the password makes SQLAlchemy read part
    of it as the host or the path: the connection would go elsewhere and the driver's error
    would quote that part. The password as written (up to the last ``@``) must be the one parsed.
    """
    written = password_of(value)
    parsed = url.password if url is not None else None
    if (
        any(c.isspace() for c in value)
        or value.partition("://")[2].count("@") > 1
        or (written is not None and unquote(written) != parsed)
    ):
        raise StoreConfigError(
            f"`{key}`: the user or password in {redact_url(value)!r} has a character that must "
            "be percent-encoded (@ as %40, / as %2F, : as %3A, ? as %3F, # as %23, space as %20)"
        )


def _parsed_url(key: str, value: str, what: str) -> URL:
    """``value`` parsed, refused (naming ``key``) if it is no URL or would split its secret."""
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        _parsed_as_written(key, value, None)
        raise StoreConfigError(f"`{key}` is not a valid {what}: {redact_url(value)!r}") from None
    _parsed_as_written(key, value, url)
    return url


def _postgres_url(setting: str) -> URL:
    url = _parsed_url("store", setting, "PostgreSQL URL")
    if not url.host:
        raise StoreConfigError(
            f"`store` PostgreSQL URL needs a host, e.g. postgresql://user@host:5432/, "
            f"got {redact_url(setting)!r}"
        )
    return url.set(drivername=PSYCOPG_DRIVER)


def _database_url(server: URL, database: str) -> str:
    query = dict(server.query)
    query.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
    return server.set(database=database, query=query).render_as_string(hide_password=False)


def _checked_sqlalchemy_url(key: str, value: str) -> str:
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        raise StoreConfigError(
            f"`{key}` must be a SQLAlchemy database URL (sqlite:///path.db or "
            f"postgresql://...), got {redact_url(value)!r}"
        ) from None
    if url.get_backend_name() != "sqlite":
        _parsed_as_written(key, value, url)
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername=PSYCOPG_DRIVER)
        return _database_url(url, url.database or "optuna")
    return url.render_as_string(hide_password=False)


def _checked_mlflow_uri(value: str) -> str:
    scheme = value.split("://", 1)[0].split("+", 1)[0].lower() if "://" in value else ""
    if scheme not in _MLFLOW_SCHEMES:
        raise StoreConfigError(
            f"`mlflow_uri` must be an http(s):// tracking server or a database URL "
            f"(sqlite, postgresql, mysql, mssql), got {redact_url(value)!r}"
        )
    if scheme in ("http", "https"):
        _parsed_as_written("mlflow_uri", value, _http_userinfo(value))
    if scheme not in ("sqlite", "http", "https"):
        _parsed_url("mlflow_uri", value, "database URL")
    if scheme == "postgresql":
        url = make_url(value).set(drivername=PSYCOPG_DRIVER)
        return _database_url(url, url.database or "mlflow")
    return value


def _http_userinfo(value: str) -> URL | None:
    """A tracking server URL's password as the HTTP client will read it, in a :class:`URL`."""
    password = urlsplit(value).password
    return URL.create("http", password=unquote(password) if password is not None else None)


def database_identity(url: str) -> tuple[str, ...] | None:
    """What makes two URLs the same database (backend, host, port, name), or None for http.

    Example:
        >>> database_identity("sqlite:////tmp/a/../a/x.db")
        ('sqlite', '/tmp/a/x.db')
    """
    if url.split("://", 1)[0].lower() in ("http", "https", "file"):
        return None
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return None
        return ("sqlite", os.path.normpath(os.path.abspath(parsed.database)))
    host = (parsed.host or "localhost").lower()
    if host in ("127.0.0.1", "::1"):
        host = "localhost"
    return (backend, host, str(parsed.port or ""), parsed.database or "")


def refuse_shared_database(optuna_url: str, mlflow_uri: str) -> None:
    """Refuse Optuna and MLflow in one database: their Alembic version tables collide."""
    left, right = database_identity(optuna_url), database_identity(mlflow_uri)
    if left is not None and left == right:
        raise StoreConfigError(
            f"Optuna and MLflow must not share one database ({redact_url(optuna_url)}): both "
            "keep their schema version in Alembic's default `alembic_version` table and each "
            "breaks the other's migrations; give them two databases"
        )
