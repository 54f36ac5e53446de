"""A worker's side of a storage proxy: ``--store onecycle://host:port`` (``onecycle serve``).

:class:`ProxyStore` is a :class:`storage.store.Store` whose Optuna storage is Optuna's
``GrpcStorageProxy`` with heartbeats added (:class:`ProxiedStorage`), whose sweep records,
store lock, trial counts and stale-trial checks are calls to the proxy
(:mod:`storage.proxy_protocol`), and whose MLflow client talks to the proxy's tracking server.
A worker holds no database connection; the bulk writers, which write tables directly, give way
to the libraries' APIs (Optuna's calls through the proxy, MLflow's REST ``log_batch``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import GrpcStorageProxy
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial
from typing_extensions import override

from storage.errors import StoreConfigError, StoreError
from storage.proxy_calls import CALL_TIMEOUT_S, Calls, forget, grpc_module, remember
from storage.proxy_protocol import (
    BEAT,
    COUNT,
    HELLO,
    LOST,
    STALE,
    SWEEPS,
    record_from_json,
    record_to_json,
)
from storage.spec import StoreSpec
from storage.store import Store, check_tracking_server
from storage.sweep_records import SweepRecord, SweepRegistry
from storage.trial_times import optuna_now

if TYPE_CHECKING:
    from sqlalchemy import Engine

OnStale = Callable[[optuna.Study, FrozenTrial], None]

#: gRPC service config for Optuna's calls: wait for the proxy (not fail at once) while the
#: channel is down, up to the coordination calls' patience.
WAITING = json.dumps(
    {"methodConfig": [{"name": [{}], "waitForReady": True, "timeout": f"{CALL_TIMEOUT_S:.0f}s"}]}
)


class ProxiedStorage(GrpcStorageProxy, BaseHeartbeat):
    """Optuna's gRPC storage client, with heartbeats and stale-trial checks through the proxy.

    Optuna's ``fail_stale_trials`` and this project's heartbeat threads then work unchanged.
    """

    def __init__(
        self,
        calls: Calls,
        interval_s: int | None = None,
        grace_s: int | None = None,
        on_stale: OnStale | None = None,
    ) -> None:
        with warnings.catch_warnings():  # experimental since Optuna 4.2; docs/coordination.md
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(host=calls.host, port=calls.port)
        self.calls, self.interval_s, self.on_stale = calls, interval_s, on_stale
        self.grace_s = grace_s or 2 * (interval_s or 0)

    @override
    def _setup(self) -> None:
        """Optuna's client, on a channel whose calls wait for a proxy that is restarting.

        Optuna's own channel fails a call at once while the proxy is down; this one waits up
        to :data:`CALL_TIMEOUT_S` for it to come back (a call already in flight when it went
        still fails: it may have been applied). Falls back to Optuna's channel if its client
        no longer has the parts replaced here.
        """
        super()._setup()
        if not all(hasattr(self, name) for name in ("_channel", "_stub", "_cache")):
            return
        grpc = grpc_module()
        channel = grpc.insecure_channel(
            f"{self._host}:{self._port}",
            options=[("grpc.max_receive_message_length", -1), ("grpc.service_config", WAITING)],
        )
        self._channel.close()
        self._channel = channel
        self._stub = type(self._stub)(channel)
        self._cache = type(self._cache)(self._stub)

    @override
    def record_heartbeat(self, trial_id: int) -> None:
        self.beat([trial_id])

    def beat(self, trial_ids: Sequence[int]) -> None:
        """One heartbeat for each trial, in one call."""
        self.calls(BEAT, {"trial_ids": [int(i) for i in trial_ids]})

    @override
    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        found = self.calls(STALE, {"study_id": study_id, "grace_s": self.grace_s})
        return [int(i) for i in found]

    @override
    def get_heartbeat_interval(self) -> int | None:
        return self.interval_s

    @override
    def get_heartbeat_stale_trial_callback(self) -> OnStale | None:
        return self.on_stale

    def count_by_state(self, study_id: int) -> dict[str, int]:
        """The study's trials by state, counted at the proxy."""
        return {str(k): int(v) for k, v in self.calls(COUNT, {"study_id": study_id}).items()}

    def running_without_heartbeat(self, study_id: int, before: datetime) -> list[tuple[int, int]]:
        """(id, number) of running trials started before ``before`` that never beat."""
        grace = max(0.0, (optuna_now() - before).total_seconds())  # the proxy's clock decides
        pairs = self.calls(LOST, {"study_id": study_id, "grace_s": grace})
        return [(int(trial_id), int(number)) for trial_id, number in pairs]


class ProxySweeps(SweepRegistry):
    """The sweep records, read and written by the proxy."""

    def __init__(self, calls: Calls) -> None:
        self._calls = calls

    def _op(self, op: str, **request: Any) -> Any:
        return self._calls(SWEEPS, {"op": op, **request})

    def create_schema(self) -> None:
        """The proxy created it."""

    @override
    def create(self, record: SweepRecord) -> SweepRecord:
        return record_from_json(self._op("create", record=record_to_json(record)))

    @override
    def get(self, name: str) -> SweepRecord:
        return record_from_json(self._op("get", name=name))

    @override
    def find(self, name: str) -> SweepRecord | None:
        found = self._op("find", name=name)
        return None if found is None else record_from_json(found)

    @override
    def update(self, name: str, **changes: Any) -> SweepRecord:
        return record_from_json(self._op("update", name=name, changes=changes))

    @override
    def delete(self, name: str) -> None:
        self._op("delete", name=name)

    @override
    def list(self) -> list[SweepRecord]:
        return [record_from_json(item) for item in self._op("list")]


class ProxyStore(Store):
    """A store reached through ``onecycle serve``: no database connection in this process."""

    def __init__(self, spec: StoreSpec) -> None:
        super().__init__(spec)
        self.calls = Calls(spec)
        self._storages: list[ProxiedStorage] = []

    @cached_property
    @override
    def engine(self) -> Engine:
        raise StoreError(
            f"{self.spec.describe()} is a storage proxy: this command needs the database "
            "itself; run it with --store set to the proxy's database"
        )

    @cached_property
    @override
    def sweeps(self) -> SweepRegistry:
        return ProxySweeps(self.calls)

    @cached_property
    @override
    def optuna_storage(self) -> optuna.storages.BaseStorage:  # type: ignore[override]
        return self._storage(ProxiedStorage(self.calls))

    @override
    def heartbeat_storage(  # type: ignore[override]
        self, interval_s: int, grace_s: int, on_stale: OnStale | None = None
    ) -> optuna.storages.BaseStorage:
        return self._storage(ProxiedStorage(self.calls, interval_s, grace_s, on_stale))

    def _storage(self, storage: ProxiedStorage) -> ProxiedStorage:
        storage.wait_server_ready(timeout=CALL_TIMEOUT_S)
        self._storages.append(storage)
        return storage

    @override
    def close(self) -> None:
        for storage in self._storages:
            storage.close()
        self._storages.clear()
        forget(self.spec, self.calls)
        self.calls.close()


def open_proxy_store(spec: StoreSpec, attempts: int) -> ProxyStore:
    """Reach the proxy (a few seconds per attempt) and its MLflow server; return the store."""
    store = ProxyStore(spec)
    try:
        store.calls.ready(timeout=3.0 * attempts)
        if not spec.mlflow_uri:
            store.spec = replace(spec, mlflow_uri=_tracking_of(store.calls))
        if store.spec.mlflow_uri.startswith(("http://", "https://")):
            check_tracking_server(store.spec.mlflow_uri, attempts)
    except BaseException:
        store.close()
        raise
    remember(spec, store.calls)
    return store


def _tracking_of(calls: Calls) -> str:
    """The MLflow tracking URI the proxy names: its own server's, or the store's server's."""
    hello = calls(HELLO, {})
    if hello["mlflow_port"]:
        return f"http://{calls.host}:{int(hello['mlflow_port'])}"
    if hello["mlflow_uri"]:
        return str(hello["mlflow_uri"])
    raise StoreConfigError(
        f"`mlflow_uri`: the storage proxy at onecycle://{calls.address} runs no MLflow server "
        "and names none; pass --mlflow-uri (ONECYCLE_MLFLOW_URI)"
    )
