"""One worker-protocol connection over asyncio Unix streams (spec/protocol.md).

Both sides use it: the node (one per worker session) and the Python worker SDK.
The codec lives in :mod:`crosswire._workers.frames`; this module owns the socket:

- **Reading**: bytes are read in chunks into one buffer and every complete frame in it
  is decoded at once. A header whose length exceeds ``max_frame`` is refused as soon
  as its 4 bytes have arrived, before anything of that size is read or allocated.
- **Writing**: :meth:`WorkerConnection.send` only queues encoded bytes; one writer task
  writes everything queued since its last turn in one ``write`` and one ``drain``, so
  frames produced in the same loop iteration are coalesced.
- **Heartbeats**: once started, a ``heartbeat`` is sent whenever nothing else went out
  for half an interval, and a peer heard from for 3 intervals is declared dead.
- **Protocol violations** send an ``error`` frame naming what was wrong, then close.
- **Tasks**: the writer and heartbeat tasks belong to the connection (a
  :class:`~crosswire._tasks.TaskSet`); one that fails unexpectedly is logged
  and closes the connection. Closing drops the read buffer at once.

Not thread-safe: use from the event loop that created it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from typing import Any

from .._exceptions import ClosedError, FrameDecodeError, ProtocolError
from .._tasks import TaskSet
from .frames import (
    DEFAULT_MAX_FRAME,
    ErrorFrame,
    Frame,
    Heartbeat,
    UnknownFrame,
    decode_frame,
    encode_frame,
)

__all__ = ["ConnectionClosedError", "WorkerConnection", "frame_kind"]

_log = logging.getLogger("crosswire.worker")

_READ_CHUNK = 256 * 1024
#: Missed intervals after which the peer is declared dead (spec/protocol.md).
MISSED_HEARTBEATS = 3


def frame_kind(frame: object) -> str:
    """The wire name (``t``) of a decoded frame, for messages."""
    if isinstance(frame, UnknownFrame):
        return frame.t
    tag = getattr(getattr(type(frame), "__struct_config__", None), "tag", None)
    return str(tag) if tag else type(frame).__name__


class ConnectionClosedError(ClosedError):
    """The connection is closed; ``reason`` says why (peer closed, violation, silence)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WorkerConnection:
    """One side of a worker session.

    :param max_frame: the largest frame this side accepts (checked on every header).
    :param label: names the peer in log lines and error messages.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        label: str = "peer",
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.max_frame = max_frame
        #: The largest frame the peer accepts; set from the handshake.
        self.peer_max_frame = DEFAULT_MAX_FRAME
        self.label = label
        self._buf = bytearray()
        self._pending: list[Frame | UnknownFrame] = []
        self._pending_error: ProtocolError | None = None
        self._out: list[bytes] = []
        self._wakeup = asyncio.Event()
        self._flushed = asyncio.Event()  # set while nothing is queued or being written
        self._flushed.set()
        self._tasks = TaskSet(label, _log, on_failure=self._internal_failure)
        self._closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        now = time.monotonic()
        self.last_received = now
        self.last_sent = now
        self.frames_received = 0
        self.frames_sent = 0
        self.writes = 0
        self._tasks.start(self._write_loop(), name="worker-conn:write")

    def _internal_failure(self, exc: BaseException) -> None:
        self.abort(f"internal error: {exc!r}")

    # --- state ----------------------------------------------------------------------

    @property
    def peer_pid(self) -> int | None:
        """The pid of the process on the other end (``SO_PEERCRED``), where the OS says."""
        sock = self._writer.get_extra_info("socket")
        peercred = getattr(socket, "SO_PEERCRED", None)
        if sock is None or peercred is None:
            return None
        try:
            pid, _uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i")))
        except OSError:
            return None
        return pid if pid > 0 else None

    @property
    def is_closed(self) -> bool:
        return self._closed.done()

    @property
    def close_reason(self) -> str | None:
        return self._closed.result() if self._closed.done() else None

    async def wait_closed(self) -> str:
        """Wait until the connection is closed; returns the reason."""
        return await asyncio.shield(self._closed)

    # --- reading --------------------------------------------------------------------

    async def read(self) -> list[Frame | UnknownFrame]:
        """The next batch of complete frames (at least one).

        :raises ProtocolError: the peer sent a bad frame; an ``error`` frame was sent and
            the connection closed.
        :raises ConnectionClosedError: the connection is closed (by either side).
        """
        while True:
            if self._pending:
                frames, self._pending = self._pending, []
                return frames
            if self._pending_error is not None:
                # a fresh exception each time: one kept here would hold, through its
                # traceback, the frames that hold this connection (a reference cycle)
                raise ProtocolError(str(self._pending_error))
            if self._closed.done():
                raise ConnectionClosedError(self._closed.result())
            try:
                # never read much more than one frame the peer may still send
                chunk = await self._reader.read(min(_READ_CHUNK, self.max_frame + 4))
            except (ConnectionError, OSError) as exc:
                self.abort(f"connection to {self.label} lost: {exc}")
                continue
            if not chunk:
                if self._buf:
                    have = len(self._buf)
                    got = (
                        f"{have - 4} of {int.from_bytes(self._buf[:4], 'big')} body bytes"
                        if have >= 4
                        else f"{have} of 4 header bytes"
                    )
                    self.abort(f"{self.label} closed the connection in the middle of a frame (received {got})")
                else:
                    self.abort(f"{self.label} closed the connection")
                continue
            self.last_received = time.monotonic()
            self._buf += chunk
            self._parse()

    def _parse(self) -> None:
        buf = self._buf
        pos = 0
        view = memoryview(buf)
        try:
            while True:
                try:
                    decoded = decode_frame(view[pos:], self.max_frame)
                except FrameDecodeError as exc:
                    message = (
                        exc.message
                        if exc.outcome == "too_large"
                        else f"{exc.outcome} frame from {self.label}: {exc.message}"
                    )
                    self._pending_error = ProtocolError(message)
                    self.fail(message)
                    return
                if decoded is None:
                    break
                frame, used = decoded
                self._pending.append(frame)
                pos += used
        finally:
            view.release()
        self.frames_received += len(self._pending)
        if pos:
            # a fresh buffer for the (usually short) rest: never resize an exported buffer
            self._buf = buf[pos:]

    # --- writing --------------------------------------------------------------------

    def send(self, frame: Frame) -> None:
        """Queue one frame; the writer task sends it with everything else queued.

        :raises ConnectionClosedError: the connection is closed.
        """
        self.send_bytes(encode_frame(frame))

    def send_bytes(self, data: bytes) -> None:
        """Queue an already encoded frame (header included)."""
        if self._closed.done():
            raise ConnectionClosedError(self._closed.result())
        if not self._out:  # with frames queued it is already clear
            self._flushed.clear()
        self._out.append(data)
        self.frames_sent += 1
        if not self._wakeup.is_set():
            self._wakeup.set()

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                if self._out:
                    data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
                    self._out.clear()
                    self._writer.write(data)
                    self.writes += 1
                    self.last_sent = time.monotonic()
                    await self._writer.drain()
                if not self._out:
                    self._flushed.set()
        except (ConnectionError, OSError) as exc:
            self.abort(f"writing to {self.label} failed: {exc}")

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout`` s) until everything queued so far was handed to the
        socket and drained; returns early when the connection closes."""
        if self._closed.done():
            return
        flushed = asyncio.ensure_future(self._flushed.wait())
        waiters: list[asyncio.Future[Any]] = [self._closed, flushed]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            flushed.cancel()

    # --- heartbeats -----------------------------------------------------------------

    def start_heartbeats(self, interval: float) -> None:
        """Send heartbeats every ``interval`` s of quiet; close after 3 silent intervals."""
        self.last_received = time.monotonic()
        self._tasks.start(self._heartbeat_loop(interval), name="worker-conn:heartbeat")

    async def _heartbeat_loop(self, interval: float) -> None:
        tick = interval / 2
        beat = encode_frame(Heartbeat())
        while not self._closed.done():
            await asyncio.sleep(tick)
            now = time.monotonic()
            silent = now - self.last_received
            if silent >= MISSED_HEARTBEATS * interval:
                self.abort(
                    f"{self.label} missed {MISSED_HEARTBEATS} heartbeats: nothing heard for "
                    f"{silent:.2f} s (interval {interval:g} s)"
                )
                return
            if now - self.last_sent >= tick and not self._out:
                with contextlib.suppress(ConnectionClosedError):
                    self.send_bytes(beat)

    # --- closing --------------------------------------------------------------------

    def fail(self, message: str, *, log: bool = True) -> None:
        """A protocol violation: send an ``error`` frame naming it (best effort), close."""
        if self._closed.done():
            return
        if log:
            _log.warning("protocol error with %s: %s", self.label, message)
        with contextlib.suppress(Exception):
            # written directly: the transport flushes its buffer before it closes
            self._writer.write(encode_frame(ErrorFrame(message=message[:4096])))
        self.abort(message)

    def abort(self, reason: str) -> None:
        """Close now (queued frames not yet written are dropped); idempotent."""
        if self._closed.done():
            return
        self._closed.set_result(reason)
        self._out.clear()
        self._flushed.set()
        self._buf = bytearray()  # free the read buffer now, not when the object goes
        self._tasks.cancel(keep=asyncio.current_task())
        with contextlib.suppress(Exception):
            self._writer.close()

    async def close(self, reason: str = "closed", *, flush_timeout: float = 2.0) -> None:
        """Flush what is queued (bounded by ``flush_timeout``), then close."""
        if not self._closed.done():
            await self.flush(flush_timeout)
        self.abort(reason)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), flush_timeout)
        await self._tasks.aclose()
