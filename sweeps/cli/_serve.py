"""``onecycle serve``: a storage proxy in front of a store, for sweeps with many workers."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from storage.errors import StoreUnavailable
from storage.proxy_server import ProxyServer
from storage.spec import PROXY_PORT, PROXY_SCHEME
from sweeps.cli._store_options import open_from_options, store_options
from sweeps.errors import UsageError


@click.command("serve")
@store_options
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind (127.0.0.1 keeps it on this machine; 0.0.0.0 for other machines).",
)
@click.option("--port", default=PROXY_PORT, show_default=True, type=click.IntRange(1, 65534))
@click.option(
    "--mlflow-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port of the MLflow tracking server it runs (default: --port + 1; 0: none, when "
    "workers track to a server of their own with --mlflow-uri).",
)
def serve_command(host: str, port: int, mlflow_port: int | None, **options: Any) -> None:
    """Serve the store to many workers: they use --store onecycle://HOST:PORT.

    One process then holds the database connections (Optuna's through its gRPC storage
    proxy, MLflow's through a tracking server on the next port) however many workers join.
    """
    chosen = port + 1 if mlflow_port is None else mlflow_port
    if chosen == port:
        raise UsageError(f"--mlflow-port must differ from --port, got {chosen} for both")
    store = open_from_options(options)
    if store.spec.kind == "proxy":
        store.close()
        raise UsageError(
            f"--store: serve a directory or a postgresql:// store, not another proxy "
            f"({store.spec.describe()})"
        )
    if not store.spec.mlflow_uri.startswith(("sqlite", "postgresql")) and chosen:
        chosen = 0  # the store already tracks to a server: workers use that one
    server = ProxyServer(store, host, port, chosen or None)
    stopped = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        stopped.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        tracking = f"http://{host}:{chosen}" if chosen else store.spec.mlflow_uri
        click.echo(
            f"serving {store.spec.describe()} at {PROXY_SCHEME}://{host}:{port} "
            f"(MLflow: {tracking}); workers: --store {PROXY_SCHEME}://{host}:{port}"
            + ("" if chosen or not tracking.startswith("http") else f" --mlflow-uri {tracking}"),
            err=True,
        )
        watcher = threading.Thread(target=_watch, args=(server, stopped), daemon=True)
        watcher.start()
        stopped.wait()
        if server.failure:
            raise StoreUnavailable(server.failure)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
        store.close()


def _watch(server: ProxyServer, stopped: threading.Event) -> None:
    """Stop serving when the MLflow server dies: workers could not track any more."""
    try:
        server.wait()
    except Exception as error:
        server.failure = str(error)
    stopped.set()
