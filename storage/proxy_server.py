"""A storage proxy: one process holds a store's database connections for a sweep's workers.

Each worker on PostgreSQL keeps two connections (:mod:`storage.pooling`), so a default server
takes about 30 workers. For more, ``onecycle serve`` runs this in front of the store: Optuna's
gRPC storage service (``GrpcStorageProxy`` on the workers), the coordination calls the workers
need beyond it (:mod:`storage.proxy_protocol`: the store-wide lock, heartbeats, stale and lost
trials, trial counts, sweep records), and an MLflow tracking server on the next port. Workers
use ``--store onecycle://host:port`` (:mod:`storage.proxy_client`) and never see the database
URL or its password. The database connections are the proxy's pool and the MLflow server's,
whatever the number of workers. Optuna's gRPC service is reached through its private
``make_server`` (the public ``run_grpc_proxy_server`` blocks and cannot be stopped).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import optuna

from storage.connect import engine_for, engine_kwargs
from storage.errors import StoreError, StoreUnavailable
from storage.pooling import MLFLOW_POOLCLASS
from storage.process_group import stop_group
from storage.proxy_calls import grpc_module
from storage.proxy_protocol import (
    BEAT,
    COUNT,
    HELLO,
    LOCK,
    LOST,
    SERVICE,
    STALE,
    SWEEPS,
    UNLOCK,
    decode,
    encode,
    record_from_json,
    record_to_json,
)
from storage.redact import first_line, password_of, scrub
from storage.server_env import mlflow_server_env
from storage.store_locks import (
    SWEEP_LOCK,
    advisory_key,
    advisory_lock_on,
    lock_database_url,
    store_lock,
)
from storage.trial_queries import counts_in, known_tables, lost_in
from storage.trial_times import optuna_now

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from storage.store import Store

log = logging.getLogger(__name__)

#: gRPC threads (made as needed): a lock call holds one while it waits, so with every worker
#: waiting for the lock at once, heartbeats and asks still find one up to about 500 workers.
THREADS = 512
#: Connections the proxy's Optuna engine keeps, and may open beyond them under load.
POOL_SIZE, POOL_OVERFLOW = 4, 8
#: Seconds a lock call waits before answering "not yet" (the worker asks again).
LOCK_WAIT_S = 20.0
#: Seconds a lock is held for a worker that stopped answering before it is released.
LOCK_LEASE_S = 300.0
#: Seconds to wait for the MLflow server's health check when it starts.
MLFLOW_START_S = 90.0


@dataclass
class _Held:
    """A lock held for a worker by a thread of the proxy, until released or its lease ends."""

    name: str
    acquired: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    failed: str = ""


class Coordination:
    """The coordination calls, answered on the proxy's store."""

    def __init__(
        self, store: Store, optuna_storage: optuna.storages.RDBStorage, mlflow_port: int | None
    ) -> None:
        self.store = store
        self.mlflow_port = mlflow_port
        self.rdb = optuna_storage
        self._held: dict[str, _Held] = {}
        self._held_lock = threading.Lock()
        self._gates: dict[str, threading.Lock] = {}
        self._lock_engines: dict[str, Engine] = {}
        self._stale: dict[int, optuna.storages.RDBStorage] = {}
        self._stale_lock = threading.Lock()

    def handlers(self) -> dict[str, Callable[[Any], Any]]:
        """Each call's handler by method name."""
        return {
            HELLO: self.hello,
            LOCK: self.lock,
            UNLOCK: self.unlock,
            BEAT: self.beat,
            STALE: self.stale,
            LOST: self.lost,
            COUNT: self.count,
            SWEEPS: self.sweeps,
        }

    def hello(self, _request: dict[str, Any]) -> dict[str, Any]:
        """Where workers track: the proxy's MLflow port, or the store's own server's URI.

        A URI with a password is not handed out: such workers pass ``--mlflow-uri`` themselves.
        """
        uri = self.store.spec.mlflow_uri
        shared = uri.startswith(("http://", "https://")) and password_of(uri) is None
        return {"mlflow_port": self.mlflow_port, "mlflow_uri": uri if shared else None}

    def lock(self, request: dict[str, Any]) -> str | None:
        """Take the store lock ``name`` for a worker: a token, or None if not within the wait."""
        held = _Held(str(request["name"]))
        token = uuid.uuid4().hex

        def hold() -> None:
            # One waiter per lock at the database: the others wait here, holding no connection.
            with self._gate(held.name):
                if held.release.is_set():  # its worker stopped waiting
                    return
                try:
                    with self._store_lock(held.name):
                        held.acquired.set()
                        held.release.wait(LOCK_LEASE_S)
                except Exception as error:  # the database failed: the worker is told, not hung
                    held.failed = first_line(error)
                    held.acquired.set()
                finally:
                    with self._held_lock:
                        self._held.pop(token, None)

        with self._held_lock:
            self._held[token] = held
        threading.Thread(target=hold, name=f"onecycle-lock-{held.name}", daemon=True).start()
        if not held.acquired.wait(float(request.get("wait_s", LOCK_WAIT_S))):
            held.release.set()  # taken later, released at once
            return None
        if held.failed:
            raise StoreUnavailable(f"cannot take the store's lock {held.name!r}: {held.failed}")
        return token

    def _store_lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """The store lock itself; on PostgreSQL on a kept connection (no connect per trial).

        In the database a direct worker takes the same lock in (a sweep's: the Optuna one),
        so direct and proxied workers can share a sweep.
        """
        spec = self.store.spec
        if spec.server_url is None:
            return store_lock(spec, spec.optuna_url, name)
        in_store = name.startswith(SWEEP_LOCK)
        url = spec.optuna_url if in_store else lock_database_url(spec.server_url)
        with self._held_lock:
            if url not in self._lock_engines:
                self._lock_engines[url] = engine_for(url, kept=True)
        return advisory_lock_on(self._lock_engines[url], url, advisory_key(spec, name))

    def _gate(self, name: str) -> threading.Lock:
        with self._held_lock:
            return self._gates.setdefault(name, threading.Lock())

    def unlock(self, request: dict[str, Any]) -> None:
        """Release a lock :meth:`lock` took."""
        with self._held_lock:
            held = self._held.get(str(request["token"]))
        if held is not None:
            held.release.set()

    def beat(self, request: dict[str, Any]) -> None:
        """Record a heartbeat for each trial."""
        for trial_id in request["trial_ids"]:
            self.rdb.record_heartbeat(int(trial_id))

    def stale(self, request: dict[str, Any]) -> list[int]:
        """Running trials of the study whose last heartbeat is over ``grace_s`` old."""
        grace = max(1, int(request["grace_s"]))
        with self._stale_lock:
            storage = self._stale.get(grace)
            if storage is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    storage = optuna.storages.RDBStorage(
                        self.store.spec.optuna_url,
                        engine_kwargs=engine_kwargs(self.store.spec.optuna_url),
                        heartbeat_interval=max(1, grace // 2),
                        grace_period=grace,
                        skip_compatibility_check=True,
                    )
                self._stale[grace] = storage
        return [int(i) for i in storage._get_stale_trial_ids(int(request["study_id"]))]

    def lost(self, request: dict[str, Any]) -> list[list[int]]:
        """Running trials started over ``grace_s`` ago that never beat: [id, number] pairs."""
        if not known_tables(self.rdb.engine):
            return []
        before = optuna_now() - timedelta(seconds=float(request["grace_s"]))
        return [list(pair) for pair in lost_in(self.rdb.engine, int(request["study_id"]), before)]

    def count(self, request: dict[str, Any]) -> dict[str, int]:
        """The study's trials by state."""
        study_id = int(request["study_id"])
        if known_tables(self.rdb.engine):
            return counts_in(self.rdb.engine, study_id)
        found = {state.name.lower(): 0 for state in optuna.trial.TrialState}
        for trial in self.rdb.get_all_trials(study_id, deepcopy=False):
            found[trial.state.name.lower()] += 1
        return found

    def sweeps(self, request: dict[str, Any]) -> Any:
        """One operation on the sweep records (``op``: create, get, find, update, delete, list)."""
        registry, op = self.store.sweeps, request["op"]
        if op == "create":
            return record_to_json(registry.create(record_from_json(request["record"])))
        if op == "get":
            return record_to_json(registry.get(request["name"]))
        if op == "find":
            found = registry.find(request["name"])
            return None if found is None else record_to_json(found)
        if op == "update":
            return record_to_json(registry.update(request["name"], **request["changes"]))
        if op == "delete":
            registry.delete(request["name"])
            return None
        if op == "list":
            return [record_to_json(record) for record in registry.list()]
        raise StoreError(f"unknown sweep record operation {op!r}")

    def close(self) -> None:
        """Release every held lock and the stale checks' engines."""
        with self._held_lock:
            for held in self._held.values():
                held.release.set()
        for storage in self._stale.values():
            storage.engine.dispose()
        for engine in self._lock_engines.values():
            engine.dispose()


def _answer(handler: Callable[[Any], Any]) -> Callable[[bytes, Any], bytes]:
    """A gRPC handler answering ``{"ok": ...}`` or ``{"error": [kind, message]}``."""

    def call(request: bytes, _context: Any) -> bytes:
        try:
            return encode({"ok": handler(decode(request))})
        except StoreError as error:
            return encode({"error": [type(error).__name__, str(error)]})
        except Exception as error:  # a database error: its first line, redacted
            return encode({"error": ["StoreUnavailable", first_line(error)]})

    return call


class ProxyServer:
    """Optuna's gRPC storage service and the coordination calls on ``host:port``; MLflow next.

    ``mlflow_port`` None runs no MLflow server (workers then need ``--mlflow-uri``).
    """

    def __init__(self, store: Store, host: str, port: int, mlflow_port: int | None) -> None:
        self.store, self.host, self.port, self.mlflow_port = store, host, port, mlflow_port
        self._server: Any = None
        self._mlflow: subprocess.Popen[bytes] | None = None
        self._coordination: Coordination | None = None
        self._rdb: optuna.storages.RDBStorage | None = None
        #: Why serving stopped on its own (the MLflow server exited), for the command to say.
        self.failure = ""

    def start(self) -> None:
        """Bind and serve; raise :class:`StoreUnavailable` if a port is taken."""
        grpc = grpc_module()
        from optuna.storages._grpc.server import make_server

        url = self.store.spec.optuna_url
        kwargs = engine_kwargs(url)
        if url.startswith("postgresql"):
            kwargs = {"pool_pre_ping": True, "pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
        self._rdb = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        self._coordination = coordination = Coordination(self.store, self._rdb, self.mlflow_port)
        served = optuna.storages.get_storage(self._rdb)  # finished trials cached in the proxy
        server = make_server(served, self.host, self.port, ThreadPoolExecutor(THREADS))
        handlers = {
            method: grpc.unary_unary_rpc_method_handler(_answer(handler))
            for method, handler in coordination.handlers().items()
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        try:
            server.start()
        except RuntimeError as error:
            raise StoreUnavailable(
                f"cannot serve on {self.host}:{self.port}: {error} (is the port taken?)"
            ) from None
        self._server = server
        if self.mlflow_port is not None:
            self._mlflow = _start_mlflow(self.store, self.host, self.mlflow_port)

    def wait(self) -> None:
        """Serve until the process is stopped (or the MLflow server exits)."""
        while self._mlflow is None or self._mlflow.poll() is None:
            time.sleep(0.5)
        raise StoreUnavailable(
            f"the MLflow server on port {self.mlflow_port} exited ({self._mlflow.returncode})"
        )

    def stop(self) -> None:
        """Stop serving, the MLflow server with it, and release the connections."""
        if self._server is not None:
            self._server.stop(grace=2).wait(5)
        if self._coordination is not None:
            self._coordination.close()
        if self._mlflow is not None:
            stop_group(self._mlflow)
        if self._rdb is not None:
            self._rdb.engine.dispose()


def _start_mlflow(store: Store, host: str, port: int) -> subprocess.Popen[bytes]:
    """``mlflow server`` on the store's tracking database, healthy, in its own process group.

    The database URL goes in the environment, never on the command line (``ps`` shows that).
    """
    spec = store.spec
    command = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port)]
    command += ["--workers", "1"]
    if spec.artifact_location:
        command += ["--artifacts-destination", spec.artifact_location]
    if host not in ("127.0.0.1", "localhost", "::1"):
        command += ["--allowed-hosts", "*"]  # workers reach it by any of the machine's names
    env = mlflow_server_env(
        {k: v for k, v in os.environ.items() if k != MLFLOW_POOLCLASS},  # a pool, here
        MLFLOW_BACKEND_STORE_URI=spec.mlflow_uri,
        MLFLOW_SQLALCHEMYSTORE_POOL_SIZE="2",
        MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW="6",
    )
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    target = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/health"
    deadline = time.monotonic() + MLFLOW_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = process.stderr.read().decode(errors="replace") if process.stderr else ""
            lines = [line for line in tail.splitlines() if line.strip()]
            raise StoreUnavailable(
                f"the MLflow server on port {port} did not start: "
                f"{scrub(lines[-1] if lines else str(process.returncode), spec.mlflow_uri)}"
            )
        with contextlib.suppress(OSError), urllib.request.urlopen(target, timeout=2) as response:
            if response.status == 200:
                if process.stderr is not None:  # keep its pipe from filling: drain it
                    threading.Thread(
                        target=process.stderr.read, name="mlflow-log", daemon=True
                    ).start()
                return process
        time.sleep(0.3)
    stop_group(process)
    raise StoreUnavailable(f"the MLflow server on port {port} did not answer within 90 s")
