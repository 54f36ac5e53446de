"""The local channel between a command trial's worker and the processes of its script.

The worker opens one Unix socket per trial, in a directory only its user can enter, and hands
its path to the script in :data:`CHANNEL_ENV`; the script never sees where the store is or
how to log in to it. Messages are JSON objects, one a line, in both directions. Every rank
connects; rank 0's updates and evaluations are recorded, and every rank asks for the decision
taken at each evaluation, so a pruned trial stops on all ranks at once.

Messages a script sends (``op``): ``hello`` (answered with the trial's context), ``report``
(buffered updates and an evaluation's metrics; answered with the decision), ``decision`` (a
rank other than 0 asking for the decision of report ``index``), ``diverged`` (rank 0's loss
diverged: updates so far and the reason), ``flush`` (updates before exit).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

CHANNEL_ENV = "ONECYCLE_TRIAL_CHANNEL"
Message = dict[str, Any]


class Connection:
    """One process of the script, as the worker sees it."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def reply(self, message: Message) -> None:
        """Send ``message``; a process that went away is not an error here."""
        data = (json.dumps(message) + "\n").encode()
        with self._lock, contextlib.suppress(OSError):
            self._sock.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


class ChannelServer:
    """The worker's end: accepts the script's processes, queues what they send.

    The trial's thread takes messages with :meth:`get`, so Optuna and MLflow are only ever
    written from the thread that runs the trial.
    """

    def __init__(self) -> None:
        self._directory = Path(tempfile.mkdtemp(prefix="onecycle-trial-"))
        os.chmod(self._directory, 0o700)
        self.path = str(self._directory / "channel.sock")
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(64)
        self._messages: queue.Queue[tuple[Connection, Message]] = queue.Queue()
        self._connections: list[Connection] = []
        self._closed = threading.Event()
        self._open = 0
        self._changed = threading.Condition()
        threading.Thread(target=self._accept, name="onecycle-channel", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            connection = Connection(sock)
            self._connections.append(connection)
            with self._changed:
                self._open += 1
            threading.Thread(
                target=self._read,
                args=(sock, connection),
                name="onecycle-channel-conn",
                daemon=True,
            ).start()

    def _read(self, sock: socket.socket, connection: Connection) -> None:
        with contextlib.suppress(OSError), sock.makefile("rb") as lines:
            for line in lines:
                with contextlib.suppress(ValueError):
                    message = json.loads(line)
                    if isinstance(message, dict):
                        self._messages.put((connection, message))
        with self._changed:
            self._open -= 1
            self._changed.notify_all()

    def wait_closed(self, timeout: float) -> bool:
        """Wait until every process has closed its end (all it sent is queued), or ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: self._open == 0, timeout)

    def get(self, timeout: float) -> tuple[Connection, Message] | None:
        """The next message, or None after ``timeout`` seconds."""
        try:
            return self._messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Stop accepting, drop every connection, remove the socket's directory."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._server.close()
        for connection in self._connections:
            connection.close()
        shutil.rmtree(self._directory, ignore_errors=True)


class ChannelClient:
    """The script's end: one connection per process."""

    def __init__(self, path: str) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)
        self._lines = self._sock.makefile("rb")
        self._lock = threading.Lock()

    def send(self, message: Message) -> None:
        """Send without waiting for an answer."""
        with self._lock:
            self._sock.sendall((json.dumps(message) + "\n").encode())

    def request(self, message: Message) -> Message:
        """Send and wait for the worker's answer."""
        with self._lock:
            self._sock.sendall((json.dumps(message) + "\n").encode())
            line = self._lines.readline()
        if not line:
            raise ConnectionError("the sweep worker closed this trial's channel")
        answer = json.loads(line)
        if not isinstance(answer, dict):
            raise ConnectionError(f"unexpected answer on the trial channel: {answer!r}")
        return answer
