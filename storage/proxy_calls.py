"""The coordination calls a worker makes to a storage proxy, and the store lock through them.

Kept apart from :mod:`storage.proxy_client` (which builds a whole store on them) so that the
store lock (:mod:`storage.store_locks`) can take a proxied store's lock without importing the
store itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from storage.errors import StoreError, StoreUnavailable
from storage.proxy_protocol import BEAT, COUNT, HELLO, LOCK, UNLOCK, decode, encode, path, raised
from storage.spec import StoreSpec, proxy_address

#: Seconds a call waits for the proxy (it may be restarting) before the worker gives up.
CALL_TIMEOUT_S = 60.0
#: Calls that read, or repeat harmlessly: sent again once when a stopping proxy cancelled them
#: in flight (waiting for a proxy that is down covers only calls not yet sent).
REPEATABLE = frozenset({HELLO, COUNT, BEAT})


def grpc_module() -> Any:
    """grpc, or a one-line error naming the extra that installs it."""
    try:
        import grpc
    except ModuleNotFoundError:
        raise StoreError(
            "a storage proxy needs grpcio: pip install 'onecycle-sweeps[proxy]'"
        ) from None
    return grpc


class Calls:
    """The coordination calls to one proxy, on a channel of their own."""

    def __init__(self, spec: StoreSpec) -> None:
        grpc = grpc_module()
        self.host, self.port = proxy_address(spec.setting)
        self.address = f"{self.host}:{self.port}"
        self.channel: Any = grpc.insecure_channel(self.address)
        self._grpc = grpc

    def __call__(
        self, method: str, request: dict[str, Any], timeout: float = CALL_TIMEOUT_S
    ) -> Any:
        """Call ``method``; its answer, or the store error it names."""
        stub = self.channel.unary_unary(
            path(method), request_serializer=encode, response_deserializer=decode
        )
        gone = (self._grpc.StatusCode.CANCELLED, self._grpc.StatusCode.UNAVAILABLE)
        for attempt in (1, 2):
            try:
                answer = stub(request, timeout=timeout, wait_for_ready=True)
                break
            except self._grpc.RpcError as error:
                if attempt == 1 and method in REPEATABLE and error.code() in gone:
                    continue
                raise StoreUnavailable(
                    f"the storage proxy at onecycle://{self.address} did not answer {method} "
                    f"({error.code().name}): check that `onecycle serve` is running there"
                ) from None
        return raised(answer)

    def ready(self, timeout: float) -> None:
        """Wait until the proxy answers; :class:`StoreUnavailable` after ``timeout`` seconds."""
        try:
            self._grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except self._grpc.FutureTimeoutError:
            raise StoreUnavailable(
                f"cannot reach the storage proxy at onecycle://{self.address} within "
                f"{timeout:.0f} s: check that `onecycle serve` is running there and the port "
                "is open"
            ) from None

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the store lock ``name`` (the proxy holds it at the database for us)."""
        token = None
        while token is None:
            token = self(LOCK, {"name": name})
        try:
            yield
        finally:
            self(UNLOCK, {"token": token})

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()


#: The proxied stores open in this process, by setting: the store lock finds their calls here.
_OPEN: dict[str, Calls] = {}


def remember(spec: StoreSpec, calls: Calls) -> None:
    """Let the store lock of ``spec`` use ``calls``."""
    _OPEN[spec.setting] = calls


def forget(spec: StoreSpec, calls: Calls) -> None:
    """``calls`` are closing: the store lock of ``spec`` opens its own next time."""
    if _OPEN.get(spec.setting) is calls:
        del _OPEN[spec.setting]


@contextmanager
def proxy_lock(spec: StoreSpec, name: str) -> Iterator[None]:
    """The store lock ``name`` of a proxied store, through a call to the proxy."""
    calls = _OPEN.get(spec.setting)
    if calls is None:
        calls = _OPEN[spec.setting] = Calls(spec)
    with calls.lock(name):
        yield
