"""A NATS client with a cheap path for crosswire's own messages.

Every crosswire event on NATS is a CloudEvent in binary content mode, so every
delivery carries a header block of some ten ``ce-*`` lines, and nats-py handles each
message in several steps of Python (two regular expressions on the control line, a
parsed header dict, a ``Msg``, a queue, a task awaiting a coroutine callback).

:class:`Client` keeps nats-py's connection handling and changes three things:

- its protocol parser reads ``MSG``/``HMSG`` control lines by splitting them and hands
  every other line (``PING``, ``PONG``, ``INFO``, ``-ERR``, ``+OK``, anything odd) to
  nats-py's own parser, one line at a time;
- a subscription may be *direct* (:meth:`Client.direct`): its messages go to a plain
  callable with ``(subject, reply, data, header block)`` as bytes, in the read loop,
  without a ``Msg``, a queue or a task; the callable returns ``False`` for a message it
  leaves to nats-py (then it takes nats-py's usual path: a status line, say);
- :meth:`Client.write`, :meth:`Client.publish_now` and :meth:`Client.publish_batch` queue
  ``PUB``/``HPUB`` commands without a coroutine (acks and naks; publishes with a header
  block built once; a whole batch as one write).

Headers of other messages are decoded by :func:`parse_header_block` (the same result
as nats-py's for every block without a status line; a status line goes to nats-py).

It also queues a PING behind the commands written before it (nats-py writes it straight
to the socket, so a ``flush()`` could be answered before the server had them: confirmed
acks rely on that order).

These override private parts of nats-py (``Client._process_headers``, ``_send_ping``,
``_ps``, ``_pending``, ``_pongs``, ``_flush_queue``, ``_subs``, ``_status``,
``_validate_subject``, ``Parser.parse`` and its state): the range in pyproject.toml pins
the versions they are tested against, and ``tests/jetstream/test_headers.py`` checks
they still have the shape relied on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from nats import errors
from nats.aio.client import Client as NatsClient
from nats.aio.client import _validate_subject
from nats.protocol.parser import AWAITING_CONTROL_LINE, AWAITING_MSG_PAYLOAD, Parser

__all__ = ["Client", "DirectHandler", "parse_header_block"]

_PLAIN = b"NATS/1.0\r\n"
_CRLF = b"\r\n"
_PING = b"PING\r\n"
_OPEN = (NatsClient.CONNECTED, NatsClient.DRAINING_SUBS, NatsClient.DRAINING_PUBS)  # the socket is up
_inline: set[asyncio.Future[None]] = set()  # flushes of a client whose flusher task died
_tails: dict[bytes, bytes] = {}  # payload -> " <size>\r\n<payload>\r\n" of a PUB (bounded)

DirectHandler = Callable[[bytes, bytes, bytes, bytes | None], bool]
"""``(subject, reply, data, header block or None) -> handled``."""


def parse_header_block(block: bytes) -> dict[str, str] | None:
    """``Name: value`` lines after ``NATS/1.0`` as a dict (values stripped, names kept
    as sent), or ``None`` for a block this parser leaves to nats-py (an inline status,
    a name with whitespace or one that is not ASCII)."""
    if not block.startswith(_PLAIN):
        return None
    out: dict[str, str] = {}
    for line in block[len(_PLAIN) :].decode("utf-8", "replace").split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip()
        if not name or not name.isascii() or " " in name or "\t" in name:
            return None
        out[name] = value.strip()
    return out


class _Parser(Parser):
    """nats-py's parser, with ``MSG``/``HMSG`` read by splitting the control line and
    direct subscriptions served without ``Client._process_msg``."""

    nc: Client

    async def parse(self, data: bytes = b"") -> None:
        buf = self.buf
        buf.extend(data)
        if self.state == AWAITING_MSG_PAYLOAD and len(buf) < self.needed + 2:
            return  # the rest of a payload is still on its way (a large one: many reads)
        nc = self.nc
        direct = nc._direct
        subs = nc._subs
        numbers = _numbers
        # Messages are sliced from one copy of the buffer; what was read is cut from it
        # once, at the end (or before nats-py's parser reads a line of it).
        view = bytes(buf)
        size = len(view)
        pos = 0
        count = received = 0
        try:
            while pos < size:
                if self.state == AWAITING_CONTROL_LINE:  # the usual state first
                    end = view.find(_CRLF, pos)
                    if end < 0:
                        return  # a partial line: wait for more
                    parts = view[pos:end].split()
                    kind = len(parts)
                    # the usual lines, their numbers seen before: read here (else by _frame)
                    if (
                        kind == 6
                        and parts[0] == b"HMSG"
                        and (sid := numbers.get(parts[2], -1)) >= 0
                        and 0 < (header_size := numbers.get(parts[4], 0)) <= (needed := numbers.get(parts[5], -1))
                    ):
                        subject, reply = parts[1], parts[3]
                    elif (
                        kind == 4
                        and parts[0] == b"MSG"
                        and (sid := numbers.get(parts[2], -1)) >= 0
                        and (needed := numbers.get(parts[3], -1)) >= 0
                    ):
                        subject, reply, header_size = parts[1], b"", 0
                    elif (frame := _frame(parts)) is not None:
                        subject, sid, reply, header_size, needed = frame
                    else:
                        # nats-py parses this one line (and raises on what it rejects)
                        del buf[:pos]
                        end -= pos
                        pos = 0
                        rest = buf[end + 2 :]
                        del buf[end + 2 :]
                        await super().parse()
                        if self.buf is not buf:
                            return  # a reset (reconnect) meanwhile: the rest is void
                        buf.extend(rest)
                        view = bytes(buf)
                        size = len(view)
                        continue
                    pos = end + 2
                    if size - pos < needed + 2:  # the payload is still on its way
                        arg = self.msg_arg
                        arg["subject"], arg["sid"], arg["reply"] = subject, sid, reply
                        self.needed, self.header_needed = needed, header_size
                        self.state = AWAITING_MSG_PAYLOAD
                        return
                elif self.state == AWAITING_MSG_PAYLOAD:  # a message whose payload had not all come
                    needed = self.needed
                    if size - pos < needed + 2:
                        return
                    arg = self.msg_arg
                    sid, subject, reply, header_size = arg["sid"], arg["subject"], arg["reply"], self.header_needed
                    self.header_needed = 0
                    self.state = AWAITING_CONTROL_LINE
                else:
                    return
                start = pos
                pos += needed + 2
                if header_size > 0:
                    header: bytes | None = view[start : start + header_size]
                    payload = view[start + header_size : start + needed]
                else:
                    header = None
                    payload = view[start : start + needed]
                handler = direct.get(sid)
                if handler is not None and sid in subs and handler(subject, reply, payload, header):
                    count += 1
                    received += needed - header_size
                    continue
                await nc._process_msg(sid, subject, reply, payload, header)  # type: ignore[arg-type]
                if self.buf is not buf:
                    return
        finally:
            if self.buf is buf:
                del buf[:pos]
            if count:
                stats = nc.stats
                stats["in_msgs"] += count
                stats["in_bytes"] += received


_numbers: dict[bytes, int] = {}  # the numbers of control lines (sids, sizes) seen: they repeat (bounded)


def _number(text: bytes) -> int:
    """``int(text)``, kept for the next time (``_numbers.get(text) or _number(text)``:
    the numbers of control lines, sids and sizes, repeat).

    :raises ValueError: as ``int`` does.
    """
    value = _numbers.get(text)
    if value is None:
        value = int(text)
        if len(_numbers) < 4096 and len(text) <= 12:
            _numbers[text] = value
    return value


def _frame(parts: list[bytes]) -> tuple[bytes, int, bytes, int, int] | None:
    """``(subject, sid, reply, header size, size)`` of a well-formed ``MSG``/``HMSG`` line
    (split at whitespace); ``None``: nats-py's parser reads it."""
    count = len(parts)
    try:
        if count in (5, 6) and parts[0] == b"HMSG":
            header_size = _numbers.get(parts[-2]) or _number(parts[-2])
            needed = _numbers.get(parts[-1]) or _number(parts[-1])
            if not 0 < header_size <= needed:
                return None
            reply = parts[3] if count == 6 else b""
        elif count in (4, 5) and parts[0] == b"MSG":
            header_size, needed = 0, _numbers.get(parts[-1]) or _number(parts[-1])
            if needed < 0:
                return None
            reply = parts[3] if count == 5 else b""
        else:
            return None
        return parts[1], _numbers.get(parts[2]) or _number(parts[2]), reply, header_size, needed
    except ValueError:
        return None


class Client(NatsClient):
    """nats-py's client with the cheap paths described in this module."""

    def __init__(self) -> None:
        super().__init__()
        self._ps = _Parser(self)
        self._direct: dict[int, DirectHandler] = {}
        self._kicked: asyncio.Future[None] | None = None
        self._valid_subjects: dict[str, bytes] = {}  # subject -> as sent (publish_batch)

    def direct(self, sid: int, handler: DirectHandler | None) -> None:
        """Serve subscription ``sid``'s messages with ``handler`` (``None``: nats-py's
        path again). A message it returns ``False`` for takes nats-py's path."""
        if handler is None:
            self._direct.pop(sid, None)
        else:
            self._direct[sid] = handler

    def write(self, subject: bytes, payload: bytes) -> None:
        """Queue a ``PUB`` of ``payload`` (no reply, no headers) to ``subject``, as
        ``publish`` would, and wake the flusher; the subject is not validated (it came
        from the server).

        :raises nats.errors.Error: closed, draining, or the reconnect buffer is full.
        """
        size = len(payload)
        tail = _tails.get(payload)  # the few settlements (+ACK, -NAK, ...) repeat
        if tail is None:
            tail = b" %d\r\n%b\r\n" % (size, payload)
            if size <= 64 and len(_tails) < 64:
                _tails[payload] = tail
        command = b"PUB " + subject + tail
        if self._status != NatsClient.CONNECTED or self._pending_data_size == 0:
            self._queue(command, size)  # checks, buffering, a flusher to wake
            return
        # connected, and a flush is already asked for (what is pending was queued since
        # the flusher last wrote, and whoever queued it woke the flusher): append
        self._pending.append(command)
        self._pending_data_size += len(command)
        stats = self.stats
        stats["out_msgs"] += 1
        stats["out_bytes"] += size

    def publish_now(self, subject: str, payload: bytes, reply: str, block: bytes | None) -> None:
        """``publish`` without a coroutine, with the header block already encoded
        (``NATS/1.0\r\n``, ``Name: value\r\n`` lines, ``\r\n``; ``None``: no headers).

        :raises nats.errors.Error: as ``publish`` raises them (bad subject, closed, too
            large, the reconnect buffer is full).
        """
        encoded = self._valid_subjects.get(subject) or self._check_subject(subject)
        if reply and not self._skip_subject_validation:
            _validate_subject(reply)
        if len(payload) > self._max_payload:
            raise errors.MaxPayloadError
        if block is None:
            command = b"PUB %b %b %d\r\n%b\r\n" % (encoded, reply.encode(), len(payload), payload)
        else:
            size = len(block)
            head = b"HPUB %b %b %d %d\r\n" % (encoded, reply.encode(), size, size + len(payload))
            command = b"%b%b%b\r\n" % (head, block, payload)
        self._queue(command, len(payload))

    def publish_batch(self, messages: Sequence[tuple[str, bytes, bytes | None]], reply_prefix: str, first: int) -> None:
        """:meth:`publish_now` of each ``(subject, payload, header block)``, the i-th
        with the reply subject ``<reply_prefix><first + i>``, queued as one write: all
        of them, or none (then it raises as :meth:`publish_now` does).

        Each distinct subject is validated once (up to 4096 are remembered); the reply
        prefix, which may differ for every batch, on every call.
        """
        valid = self._valid_subjects
        if not self._skip_subject_validation:
            _validate_subject(reply_prefix)
        reply = reply_prefix.encode()
        max_payload = self._max_payload
        commands = []
        size = 0
        seq = first
        for subject, payload, block in messages:
            encoded = valid.get(subject) or self._check_subject(subject)
            n = len(payload)
            if n > max_payload:
                raise errors.MaxPayloadError
            if block is None:
                commands.append(b"PUB %b %b%d %d\r\n%b\r\n" % (encoded, reply, seq, n, payload))
            else:
                hs = len(block)
                commands.append(b"HPUB %b %b%d %d %d\r\n%b%b\r\n" % (encoded, reply, seq, hs, hs + n, block, payload))
            size += n
            seq += 1
        if commands:
            self._queue(b"".join(commands), size, len(commands))

    def write_commands(self, commands: bytes, payload_size: int, count: int) -> None:
        """Queue ``count`` ready-made ``PUB``/``HPUB`` commands, joined, as one write:
        their subjects valid and their payloads within the server's limit (the caller
        made them so; nothing is checked), ``payload_size`` their payloads' bytes.

        :raises nats.errors.Error: closed, draining, or the reconnect buffer is full.
        """
        self._queue(commands, payload_size, count)

    def _check_subject(self, subject: str) -> bytes:
        if not self._skip_subject_validation:
            _validate_subject(subject)
        if not subject:
            raise errors.BadSubjectError
        valid = self._valid_subjects
        if len(valid) >= 4096:
            valid.clear()
        encoded = valid[subject] = subject.encode()
        return encoded

    def _queue(self, command: bytes, payload_size: int, count: int = 1) -> None:
        status = self._status  # is_closed, is_draining_pubs, is_connected, without three calls
        if status == NatsClient.CLOSED:
            raise errors.ConnectionClosedError
        if status == NatsClient.DRAINING_PUBS:
            raise errors.ConnectionDrainingError
        connected = status == NatsClient.CONNECTED or status == NatsClient.DRAINING_SUBS
        if not connected and (
            self._max_pending_size <= 0 or payload_size + self._pending_data_size > self._max_pending_size
        ):
            raise errors.OutboundBufferLimitError
        self._pending.append(command)
        self._pending_data_size += len(command)
        stats = self.stats
        stats["out_msgs"] += count
        stats["out_bytes"] += payload_size
        queue = self._flush_queue
        if connected and queue is not None and queue.empty():
            flusher = self._flusher_task
            if flusher is None or flusher.done():
                task = asyncio.ensure_future(self._flush_pending())  # flushes inline
                _inline.add(task)
                task.add_done_callback(_inline.discard)
                return
            kicked = self._kicked
            if kicked is None:
                kicked = self._kicked = asyncio.get_running_loop().create_future()
                kicked.set_result(None)  # the flusher completes a future it gets; this one needs none
            queue.put_nowait(kicked)

    async def _send_ping(self, future: asyncio.Future[None] | None = None) -> None:
        """nats-py writes a PING straight to the socket, ahead of the commands still
        queued for the flusher, so its PONG would confirm less than was written before
        it (``flush()``, confirmed acks). Connected, it is queued behind them instead."""
        if self._status not in _OPEN:
            await super()._send_ping(future)  # (re)connecting: as nats-py does
            return
        self._pongs.append(future if future is not None else asyncio.get_running_loop().create_future())
        self._pending.append(_PING)
        self._pending_data_size += len(_PING)
        await self._flush_pending()

    async def _process_headers(self, headers: bytes) -> dict[str, str] | None:
        if not headers:
            return None
        parsed = parse_header_block(headers)
        if parsed is not None:
            return parsed or None
        result: dict[str, str] | None = await super()._process_headers(headers)
        return result
