"""The node's listening socket for workers (spec/protocol.md, "Connection" and "Handshake").

One :class:`WorkerHub` per node: a Unix socket in a private directory (``0700``, the
socket ``0600``). It accepts connections, reads each ``hello``, checks it (a shared
protocol version, some event types, ``max_in_flight`` ≥ 1, ``max_frame`` ≥ 4096) and
hands it to the :class:`WorkerSlot` registered under that name (a
:class:`~crosswire._workers.pool.WorkerPool`) — or answers ``reject`` with a reason
naming what was wrong, and keeps serving others.

The hub knows slots only through the two-method :class:`WorkerSlot` protocol, so it
imports nothing of the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Protocol

from .._exceptions import ClosedError, ConfigurationError, ProtocolError
from .connection import WorkerConnection, frame_kind
from .frames import MIN_MAX_FRAME, PROTOCOL_VERSIONS, Frame, Hello, Reject, UnknownFrame
from .tasks import TaskSet

__all__ = ["WorkerHub", "WorkerSlot", "check_hello"]

_log = logging.getLogger("crosswire.worker")


class WorkerSlot(Protocol):
    """Where the hub hands a connection whose ``hello`` names this slot."""

    @property
    def name(self) -> str:
        """The worker name a ``hello`` must carry."""
        ...

    def offer(self, conn: WorkerConnection, hello: Hello, rest: Sequence[Frame | UnknownFrame]) -> str | None:
        """Take ``conn`` (already checked by :func:`check_hello`), with the frames that
        arrived after its ``hello``; return None, or the reason it is refused."""
        ...

    def refused(self, hello: Hello, reason: str, peer_pid: int | None = None) -> None:
        """A ``hello`` naming this slot, from process ``peer_pid`` (when known), was
        refused with ``reason`` (by the hub or the slot)."""
        ...


class WorkerHub:
    """The node's listening socket for workers; one per node.

    Use as an async context manager, or call :meth:`start` / :meth:`close`.
    ``path`` is what spawned workers get in ``CROSSWIRE_SOCKET``.
    """

    def __init__(self, node_name: str = "crosswire", *, hello_timeout: float = 10.0) -> None:
        self.node_name = node_name
        self.hello_timeout = hello_timeout
        self._slots: dict[str, WorkerSlot] = {}
        self._server: asyncio.AbstractServer | None = None
        self._dir: str | None = None
        self._path: str | None = None
        self._handshakes = TaskSet("worker hub", _log)
        self.rejected = 0

    @property
    def socket_path(self) -> str | None:
        """The socket path, or None before :meth:`start`."""
        return self._path

    @property
    def path(self) -> str:
        if self._path is None:
            raise ClosedError("the worker hub is not started")
        return self._path

    async def start(self) -> None:
        if self._server is not None:
            return
        # AF_UNIX paths are limited to ~107 bytes: fall back to /tmp for a long TMPDIR
        base = tempfile.gettempdir()
        self._dir = tempfile.mkdtemp(  # created 0700
            prefix="crosswire-", dir=base if len(base) <= 80 else "/tmp"
        )
        os.chmod(self._dir, 0o700)
        self._path = os.path.join(self._dir, "node.sock")
        self._server = await asyncio.start_unix_server(self._accept, path=self._path)
        os.chmod(self._path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        await self._handshakes.aclose()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def __aenter__(self) -> WorkerHub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def register(self, slot: WorkerSlot) -> None:
        """Route ``hello`` frames naming ``slot.name`` to ``slot``.

        :raises ConfigurationError: another slot already has that name.
        """
        name = slot.name
        if self._slots.get(name) not in (None, slot):
            raise ConfigurationError(f"a worker named {name!r} is already registered")
        self._slots[name] = slot

    def unregister(self, slot: WorkerSlot) -> None:
        if self._slots.get(slot.name) is slot:
            del self._slots[slot.name]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # run as an owned task: the server's own callback task is not awaited on close
        await asyncio.shield(
            self._handshakes.start(self._handshake(WorkerConnection(reader, writer, label="worker (before hello)")))
        )

    async def _handshake(self, conn: WorkerConnection) -> None:
        try:
            frames = await asyncio.wait_for(conn.read(), self.hello_timeout)
        except TimeoutError:
            conn.fail(f"no hello within {self.hello_timeout:g} s")
            return
        except (ProtocolError, ClosedError) as exc:
            _log.warning("worker connection closed before its hello: %s", exc)
            conn.abort(str(exc))
            return
        hello = frames[0]
        if not isinstance(hello, Hello):
            conn.fail(f"expected a hello frame first, got {frame_kind(hello)!r}")
            return
        conn.label = f"worker {hello.name!r}"
        slot = self._slots.get(hello.name)
        reason = check_hello(hello)
        if reason is None and slot is None:
            known = ", ".join(repr(n) for n in sorted(self._slots)) or "none"
            reason = f"no worker named {hello.name!r} is configured on this node (configured: {known})"
        if reason is None and slot is not None:
            reason = slot.offer(conn, hello, frames[1:])
        if reason is not None:
            self.rejected += 1
            _log.warning("rejected worker %r: %s", hello.name, reason)
            with contextlib.suppress(ClosedError):
                conn.send(Reject(reason=reason))
            await conn.close(f"rejected: {reason}")
            if slot is not None:
                slot.refused(hello, reason, conn.peer_pid)


def check_hello(hello: Hello) -> str | None:
    shared = set(hello.versions) & set(PROTOCOL_VERSIONS)
    if not shared:
        return (
            f"unsupported protocol versions: worker speaks {sorted(hello.versions)}, "
            f"node speaks {sorted(PROTOCOL_VERSIONS)}"
        )
    if not hello.types:
        return "hello lists no event types to handle"
    if hello.max_in_flight < 1:
        return "hello max_in_flight must be at least 1"
    if hello.max_frame < MIN_MAX_FRAME:
        return f"hello max_frame {hello.max_frame} is below the minimum {MIN_MAX_FRAME}"
    return None
