"""The control channel between the harness and the node process it runs.

A Unix socket carrying length-prefixed MessagePack maps, each with a ``t`` (its
kind). Node → harness: ``hello`` (pid, bindings, routes), ``runs`` (handler runs),
``stats`` (``node.statistics()`` and RSS), ``letters`` (dead letters), ``refused``
(events ``submit`` did not accept). Harness → node: ``submit`` (encoded events),
``fault`` (a handler fault on/off), ``signal`` (a worker process fault), ``letters``
(ask for the dead letters), ``stop`` (drain and exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any

import msgspec

__all__ = ["MAX_MESSAGE", "Channel"]

MAX_MESSAGE = 256 * 1024 * 1024
_len = struct.Struct(">I")


class Channel:
    """One end of the control channel (not thread-safe; one event loop)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._enc = msgspec.msgpack.Encoder()
        self._dec = msgspec.msgpack.Decoder()
        self.closed = False

    async def send(self, message: dict[str, Any]) -> None:
        body = self._enc.encode(message)
        self.writer.write(_len.pack(len(body)) + body)
        await self.writer.drain()

    async def recv(self) -> dict[str, Any] | None:
        """The next message, or ``None`` once the peer closed."""
        try:
            head = await self.reader.readexactly(4)
            (n,) = _len.unpack(head)
            if n > MAX_MESSAGE:
                raise ValueError(f"control message of {n} bytes exceeds {MAX_MESSAGE}")
            body = await self.reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed = True
            return None
        message = self._dec.decode(body)
        if not isinstance(message, dict):
            raise ValueError("control message is not a map")
        return message

    async def close(self) -> None:
        self.closed = True
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
