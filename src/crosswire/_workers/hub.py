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
import stat
import tempfile
from collections.abc import Sequence
from typing import Protocol

from .._exceptions import ClosedError, ConfigurationError, ProtocolError
from .._tasks import TaskSet
from .connection import WorkerConnection, frame_kind
from .frames import MIN_MAX_FRAME, PROTOCOL_VERSIONS, Frame, Hello, Reject, UnknownFrame

__all__ = ["WorkerHub", "WorkerSlot", "check_hello"]

_log = logging.getLogger("crosswire.worker")

#: Connections that have not completed the handshake, at once.
MAX_UNAUTHENTICATED = 64
#: The largest frame accepted before a ``hello`` is accepted (a ``hello`` is far smaller).
PRE_HELLO_MAX_FRAME = 4096
_MAX_SUN_PATH = 107
_DIR_PREFIX = "crosswire-"
_PID_FILE = "node.pid"


def remove_stale_dirs(base: str) -> list[str]:
    """Remove socket directories under ``base`` left by nodes of this user that died
    (their ``node.pid`` names no running process); returns what was removed."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        if not entry.name.startswith(_DIR_PREFIX):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != uid:
                continue
            with open(os.path.join(entry.path, _PID_FILE)) as f:
                pid = int(f.read().strip() or "0")
        except (OSError, ValueError):
            continue  # not one of ours, or being created right now
        if pid > 0 and not _alive(pid):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
            _log.info("removed the stale worker socket directory %s (node pid %d is gone)", entry.path, pid)
    return removed


def _private_dir() -> str:
    """A fresh ``0700`` directory for the socket, marked with this process's pid, after
    removing those of nodes that died."""
    base = tempfile.gettempdir()
    base = base if len(base) <= 80 else "/tmp"  # AF_UNIX paths are limited to ~107 bytes
    remove_stale_dirs(base)
    directory = tempfile.mkdtemp(prefix=_DIR_PREFIX, dir=base)  # created 0700
    os.chmod(directory, 0o700)
    with open(os.path.join(directory, _PID_FILE), "w") as f:
        f.write(str(os.getpid()))
    return directory


def _prepare_parent(requested: str) -> str:
    path = os.path.abspath(requested)
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create the worker socket's directory {parent!r}: {exc}") from exc
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _remove_stale_socket(path: str) -> None:
    """Unlink a socket at ``path`` that nobody listens on any more.

    :raises ConfigurationError: something else is at ``path``, or a node listens there.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigurationError(f"worker socket path {path!r} exists and is not a socket")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 1.0)
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        _log.info("removed the stale worker socket %s (no node listens on it)", path)
        return
    except (OSError, TimeoutError) as exc:
        raise ConfigurationError(f"cannot check the worker socket {path!r}: {exc}") from exc
    writer.close()
    raise ConfigurationError(f"another node is listening for workers on {path!r}")


class WorkerSlot(Protocol):
    """Where the hub hands a connection whose ``hello`` names this slot."""

    @property
    def name(self) -> str:
        """The worker name a ``hello`` must carry."""
        ...

    async def offer(self, conn: WorkerConnection, hello: Hello, rest: Sequence[Frame | UnknownFrame]) -> str | None:
        """Take ``conn`` (already checked by :func:`check_hello`), with the frames that
        arrived after its ``hello``; return None, or the reason it is refused. Runs
        within the hub's ``hello_timeout``."""
        ...

    def refused(self, hello: Hello, reason: str, peer_pid: int | None = None) -> None:
        """A ``hello`` naming this slot, from process ``peer_pid`` (when known), was
        refused with ``reason`` (by the hub or the slot)."""
        ...


class WorkerHub:
    """The node's listening socket for workers; one per node.

    Use as an async context manager, or call :meth:`start` / :meth:`close`.
    ``path`` is what spawned workers get in ``CROSSWIRE_SOCKET``.

    :param socket_path: where to listen (its directory is created ``0700`` if missing);
        default: ``node.sock`` in a fresh private directory under the temp dir. A socket
        left at that path by a node that died is removed; one another node still
        listens on is a :class:`~crosswire.ConfigurationError`.
    :param hello_timeout: seconds a connection has to send its ``hello``.
    :param max_unauthenticated: connections that have not completed the handshake at
        once; more are refused with an ``error`` frame.
    :param pre_hello_max_frame: the largest frame accepted before ``hello`` is accepted.

    Each unauthenticated connection costs at most its ``pre_hello_max_frame`` of buffer
    plus the socket's read chunk, for at most ``hello_timeout``; its buffers are freed
    as soon as it closes.
    """

    def __init__(
        self,
        node_name: str = "crosswire",
        *,
        socket_path: str | None = None,
        hello_timeout: float = 10.0,
        max_unauthenticated: int = MAX_UNAUTHENTICATED,
        pre_hello_max_frame: int = PRE_HELLO_MAX_FRAME,
    ) -> None:
        if socket_path is not None and len(os.fsencode(socket_path)) > _MAX_SUN_PATH:
            raise ConfigurationError(f"worker socket path is longer than {_MAX_SUN_PATH} bytes: {socket_path!r}")
        if max_unauthenticated < 1 or pre_hello_max_frame < MIN_MAX_FRAME or hello_timeout <= 0:
            raise ConfigurationError(
                f"need max_unauthenticated >= 1, pre_hello_max_frame >= {MIN_MAX_FRAME}, hello_timeout > 0"
            )
        self.node_name = node_name
        self.hello_timeout = hello_timeout
        self.max_unauthenticated = max_unauthenticated
        self.pre_hello_max_frame = pre_hello_max_frame
        self._requested = socket_path
        self._slots: dict[str, WorkerSlot] = {}
        self._server: asyncio.AbstractServer | None = None
        self._dir: str | None = None  # a directory this hub created, removed on close
        self._path: str | None = None
        self._handshakes = TaskSet("worker hub", _log)
        self.rejected = 0
        #: Connections refused because too many were waiting for their hello.
        self.refused_unauthenticated = 0
        self._refusing = False

    @property
    def socket_path(self) -> str | None:
        """The socket path, or None before :meth:`start`."""
        return self._path

    @property
    def path(self) -> str:
        if self._path is None:
            raise ClosedError("the worker hub is not started")
        return self._path

    @property
    def unauthenticated(self) -> int:
        """Connections waiting for their ``hello`` to be accepted."""
        return len(self._handshakes)

    async def start(self) -> None:
        """Listen. :raises ConfigurationError: the socket path is unusable or taken."""
        if self._server is not None:
            return
        if self._requested is None:
            self._dir = _private_dir()
            path = os.path.join(self._dir, "node.sock")
        else:
            path = _prepare_parent(self._requested)
            await _remove_stale_socket(path)
        try:
            self._server = await asyncio.start_unix_server(self._accept, path=path)
        except OSError as exc:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
            raise ConfigurationError(f"cannot listen for workers on {path!r}: {exc}") from exc
        os.chmod(path, 0o600)
        self._path = path

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
            if self._dir is None and self._path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._path)
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
        conn = WorkerConnection(reader, writer, max_frame=self.pre_hello_max_frame, label="worker (before hello)")
        if len(self._handshakes) >= self.max_unauthenticated:
            self.refused_unauthenticated += 1
            message = f"too many connections waiting for their hello (max {self.max_unauthenticated})"
            if not self._refusing:  # once per flood, not once per connection
                self._refusing = True
                _log.warning("%s: refusing more until some finish", message)
            conn.fail(message, log=False)
            await conn.close()
            return
        self._refusing = False
        # run as an owned task: the server's own callback task is not awaited on close
        await asyncio.shield(self._handshakes.start(self._handshake(conn)))

    async def _handshake(self, conn: WorkerConnection) -> None:
        try:
            # a timeout scope, not wait_for: wait_for's inner task would keep the read's
            # exception, whose traceback holds this frame: a cycle holding the connection
            async with asyncio.timeout(self.hello_timeout):
                frames = await conn.read()
        except TimeoutError:
            conn.fail(f"no hello within {self.hello_timeout:g} s")
            await conn.close()
            return
        except ProtocolError as exc:  # the connection logged the violation already
            await conn.close(str(exc))
            return
        except ClosedError as exc:
            _log.warning("worker connection closed before its hello: %s", exc)
            await conn.close(str(exc))
            return
        hello = frames[0]
        if not isinstance(hello, Hello):
            conn.fail(f"expected a hello frame first, got {frame_kind(hello)!r}")
            await conn.close()
            return
        conn.label = f"worker {hello.name!r}"
        slot = self._slots.get(hello.name)
        reason = check_hello(hello)
        if reason is None and slot is None:
            known = ", ".join(repr(n) for n in sorted(self._slots)) or "none"
            reason = f"no worker named {hello.name!r} is configured on this node (configured: {known})"
        if reason is None and slot is not None:
            try:
                async with asyncio.timeout(self.hello_timeout):
                    reason = await slot.offer(conn, hello, frames[1:])
            except TimeoutError:
                reason = f"worker {hello.name!r} could not be admitted within {self.hello_timeout:g} s"
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
    for key in hello.schemas or ():
        if key not in hello.types:
            return f"hello schemas: {key!r} is not one of the worker's types"
    return None
