"""Open a store: check it, create what is missing, and hand out Optuna and MLflow handles.

``storage.open_store(resolve_store(...))`` is the one entry point (:mod:`storage.opening`; a
storage proxy's address opens in :mod:`storage.proxy_client`). It fails fast with a one-line
:class:`~storage.errors.StoreError` when the store cannot be used, and otherwise returns a
:class:`Store` whose Optuna storage, MLflow client and sweep registry all point at the same
store. Handles are created lazily and cached, one per process.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from storage import schema_template
from storage.connect import ATTEMPTS, engine_for, engine_kwargs, ping, with_retries
from storage.disk_full import FREE_SPACE, is_disk_full, store_full
from storage.errors import StoreError, StoreUnavailable
from storage.pooling import unpooled_mlflow
from storage.postgres import wanted_databases
from storage.redact import first_line, redact_url, scrub
from storage.spec import StoreSpec
from storage.sqlite_dir import enable_wal, fast_wal_commits, sqlite_files, sqlite_path
from storage.store_creation import Creation, plan, prepare
from storage.store_locks import schema_lock
from storage.store_upgrade import refuse_out_of_date, schema_states
from storage.sweep_records import SweepRegistry

if TYPE_CHECKING:
    import optuna
    from mlflow import MlflowClient

    from storage.tracking import ClientCall, Tracking

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds to wait for an MLflow tracking server's health check.
HTTP_TIMEOUT_S = 5.0
#: What "table/index ... already exists" on opening means: a schema whose creation was cut
#: short in a database this store did not create (a new store's own is removed instead).
HALF_MADE = (
    "; its schema was left half made by an earlier creation that failed (a full disk?) and "
    "cannot be finished: it holds no data yet, so drop and create that database again (or "
    "move the file aside) and run again"
)


class Store:
    """An opened store. Use :func:`open_store` to make one."""

    def __init__(self, spec: StoreSpec) -> None:
        self.spec = spec
        #: The worker's kept engine on the Optuna database, once its heartbeat storage is open:
        #: the sweep's lock is held and waited for on its connection (storage.store_locks).
        self.kept_engine: Engine | None = None
        #: The tracking writer this process's MLflow work is sent to, when one is set
        #: (:meth:`mlflow_call`); else that work runs here, with :attr:`mlflow`.
        self.mlflow_via: Tracking | None = None
        #: The store's Optuna schema was found at the installed Optuna's head revision when it
        #: was opened: Optuna's own check of it, which imports every migration script (about 0.1 s
        #: in each process), would say the same, and is skipped.
        self.optuna_at_head = False

    def mlflow_call(self, function: ClientCall, *args: Any, **kwargs: Any) -> Any:
        """``function(client, *args, **kwargs)``, in the tracking writer if one is set and open.

        Sent there, it costs this process no MLflow import (seconds, on the critical path of a
        command that trains) and runs after the writes already sent; with no writer (or one
        closed or dead) it runs here, with :attr:`mlflow`.
        """
        via = self.mlflow_via
        if via is not None and via.can_ask:
            return via.ask(function, *args, **kwargs)
        return function(self.mlflow, *args, **kwargs)

    @cached_property
    def engine(self) -> Engine:
        """SQLAlchemy engine on the Optuna database (where sweep records live too)."""
        return engine_for(self.spec.optuna_url)

    @cached_property
    def sweeps(self) -> SweepRegistry:
        """The sweep records."""
        return SweepRegistry(self.engine)

    @cached_property
    def optuna_storage(self) -> optuna.storages.RDBStorage:
        """Optuna's RDB storage on this store (schema created or upgraded check on first use)."""
        import optuna

        url = self.spec.optuna_url
        kwargs = engine_kwargs(url)

        def build() -> optuna.storages.RDBStorage:
            with schema_lock(self.spec, url):
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=kwargs, skip_compatibility_check=self.optuna_at_head
                )

        return _guard("open the Optuna storage", url, build)

    def heartbeat_storage(
        self,
        interval_s: int,
        grace_s: int,
        on_stale: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    ) -> optuna.storages.RDBStorage:
        """Optuna storage whose running trials send heartbeats; stale ones are failed.

        A worker that dies (SIGKILL, a lost machine) stops sending heartbeats; the next worker to
        start a trial marks its trial FAIL after ``grace_s`` seconds and calls ``on_stale``.
        """
        import optuna

        url = self.spec.optuna_url
        kwargs = engine_kwargs(url, kept=True)  # asks, tells, heartbeats: all the time

        def build() -> optuna.storages.RDBStorage:
            with schema_lock(self.spec, url), warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=kwargs,
                    heartbeat_interval=interval_s,
                    grace_period=grace_s,
                    heartbeat_stale_trial_callback=on_stale,
                    skip_compatibility_check=self.optuna_at_head,
                )

        storage = _guard("open the Optuna storage", url, build)
        self.kept_engine = storage.engine
        return storage

    @cached_property
    def mlflow(self) -> MlflowClient:
        """An ``MlflowClient`` bound to this store's tracking URI (tables created on first use)."""
        from mlflow import MlflowClient

        uri = self.spec.mlflow_uri
        unpooled_mlflow(uri)

        def build() -> MlflowClient:
            with schema_lock(self.spec, uri):
                client = MlflowClient(tracking_uri=uri)
                client.search_experiments(max_results=1)  # forces the backend (and schema) now
            return client

        return _guard("open the MLflow tracking store", uri, build)

    def close(self) -> None:
        """Release database connections held by this process."""
        if "engine" in self.__dict__:
            self.engine.dispose()
        if "optuna_storage" in self.__dict__:
            self.optuna_storage.remove_session()
            self.optuna_storage.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def open_database_store(
    spec: StoreSpec, attempts: int = ATTEMPTS, *, create: bool = True
) -> Store:
    """Check and prepare the directory or PostgreSQL store ``spec`` describes; return it opened.

    A new store is created whole or not at all (:mod:`storage.store_creation`): its WAL SQLite
    files and ``artifacts/``, or its two PostgreSQL databases, then the sweep table, Optuna's
    and MLflow's schemas; a failure removes what was made. Every database is pinged and an
    MLflow tracking server's ``/health`` is checked, each with a bounded wait and retries for
    transient errors. ``create=False`` (commands that only read) refuses a store that is not
    there instead of creating it.

    Example:
        >>> import tempfile
        >>> from storage.spec import resolve_store
        >>> store = open_database_store(resolve_store(tempfile.mkdtemp(), env={}))
        >>> store.sweeps.list()
        []
    """
    creation = prepare(spec)
    _check_foreign_tracking(spec, attempts)
    store = Store(spec)
    with schema_lock(spec, spec.optuna_url):
        try:
            _build(store, plan(creation, attempts, create), attempts)
        except BaseException as error:
            store.close()
            failure = creation.undo(error)
            if failure is error:
                raise
            raise failure from None
    log.debug("opened store %s", spec.describe())
    return store


def _check_foreign_tracking(spec: StoreSpec, attempts: int) -> None:
    """Reach an MLflow tracking server, or a tracking database this store does not create."""
    uri = spec.mlflow_uri
    if uri.startswith(("http://", "https://")):
        check_tracking_server(uri, attempts)
        return
    ours = uri.startswith("postgresql") and make_url(uri).database in wanted_databases(spec)
    if "://" in uri and not uri.startswith(("file:", "sqlite")) and not ours:
        ping(uri, attempts)


def _build(store: Store, creation: Creation, attempts: int) -> None:
    """Create what ``creation`` found missing, then, for a new store, both schemas at once."""
    spec = store.spec
    for database in sqlite_files(spec):
        enable_wal(database, probe=database in creation.files)
        fast_wal_commits()
    creation.create_databases(attempts)
    creation.mark()
    ping(spec.optuna_url, attempts)
    if spec.mlflow_uri.startswith("postgresql"):
        ping(spec.mlflow_uri, attempts)
    if not creation.new:
        states = schema_states(spec)
        # Before anything is written; nothing is migrated silently.
        refuse_out_of_date(spec, states)
        store.optuna_at_head = any(
            state.library == "optuna" and state.found == state.installed.head for state in states
        )
    with_retries("create the sweep table", spec.optuna_url, store.sweeps.create_schema, attempts)
    if creation.new:
        new_mlflow_file = sqlite_path(spec.mlflow_uri)
        if new_mlflow_file not in creation.files:
            new_mlflow_file = None
        # A copied schema is whole and current: no MLflow import here to check it again.
        if new_mlflow_file is None or not schema_template.seed(new_mlflow_file):
            store.mlflow  # noqa: B018 - MLflow's schema, now, while a failure can still be undone
            if new_mlflow_file is not None:
                schema_template.keep(new_mlflow_file)
        store.optuna_storage  # noqa: B018 - and Optuna's
        creation.finish(attempts)


def check_tracking_server(uri: str, attempts: int = ATTEMPTS) -> None:
    """GET ``<uri>/health`` of an MLflow tracking server; raise :class:`StoreUnavailable`."""
    target = uri.rstrip("/") + "/health"
    last = ""
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(target, timeout=HTTP_TIMEOUT_S) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as error:
            last = str(getattr(error, "reason", error))
    raise StoreUnavailable(
        f"cannot reach the MLflow tracking server at {redact_url(uri)} ({attempts} attempts): "
        f"{scrub(last, uri)}; check that `mlflow server` is running and the URI is right"
    )


def _guard(what: str, url: str, build: Callable[[], T]) -> T:
    """Run ``build``; turn Optuna's, MLflow's and SQLAlchemy's errors into a redacted one-liner."""
    try:
        return with_retries(what, url, build)
    except StoreError:
        raise
    except Exception as error:  # MlflowException, optuna.exceptions.StorageInternalError, ...
        if is_disk_full(error):
            raise store_full(what, url, error, FREE_SPACE) from None
        detail = first_line(error, url)
        advice = HALF_MADE if "already exists" in detail else ""
        raise StoreUnavailable(f"cannot {what} at {redact_url(url)}: {detail}{advice}") from None
