"""Pipelined JetStream publishing: write a whole batch, then await every ack.

:class:`Publisher` is one per connection and shared by the transport and the stores
on it (dead letters, KV dedup). Acks come back on one inbox per connection, message
``i`` of a batch on ``<inbox>.<batch>.<i>``: one entry per batch waits for them (no
future or entry per message), and the usual pub-ack (``{"stream":..`` without an
``"error"``) is only counted, decoded when its sequence is asked for; the batches' timeouts are kept by one
deadline scan per publisher (every 50 ms while a batch waits), not a timer each.

Each message goes out as one ``HPUB`` command built here (:func:`header_block`,
:meth:`.headers.Client.publish_now`), without nats-py's per-header work or a
coroutine per message; pub-acks are read in the client's read loop (a direct
subscription), a status (no stream: 503) by nats-py.

A leaf module: it imports only :mod:`.config` and :mod:`.headers` of the JetStream
package (and the envelope's binary-mode mapping).
"""

from __future__ import annotations

import asyncio
import operator
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
import nats.errors
from nats.aio.msg import Msg

from ..._binary import NEEDS_ESCAPE, STRING_ATTRS, to_binary
from ..._envelope import Event, encode_event
from ..._exceptions import ConfigurationError, PayloadTooLargeError, TransportError
from .config import check_subject_part
from .headers import Client

__all__ = [
    "NO_STREAM",
    "WRONG_LAST_SEQUENCE",
    "Message",
    "PubAck",
    "PublishBatch",
    "Publisher",
    "ce_headers",
    "decode_puback",
    "event_block",
    "header_block",
    "message_size",
    "prepare",
    "stored",
]

NO_STREAM = -503
"""``PublishBatch.failed`` code: no stream listens on the subject."""
WRONG_LAST_SEQUENCE = (10071, 10164)
"""JetStream error codes: the expected last (subject) sequence differs."""

Message = tuple[str, bytes, dict[str, str] | bytes | None]
"""``(subject, body, headers)``; headers as a dict or as their block (:func:`header_block`)."""

_SCAN = 0.05  # seconds between deadline scans while a batch waits for its acks
_valid_types: dict[str, None] = {}  # event types checked as subject parts (bounded)
_HEADER_NAMES = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # the names nats-py accepts, run together


def header_block(headers: Mapping[str, str]) -> bytes | None:
    """The header block nats-py would write for ``headers`` (``NATS/1.0\r\n``,
    ``Name: value\r\n`` each, ``\r\n``), or ``None`` for headers it would rewrite or
    refuse (a name that is empty or has other characters, a value with surrounding
    whitespace or a line break): those go through nats-py's own ``publish``."""
    if not headers or _HEADER_NAMES.fullmatch("".join(headers)) is None or "" in headers:
        return None
    lines = []
    for name, value in headers.items():
        if value != value.strip() or "\r" in value or "\n" in value:
            return None
        lines.append(f"{name}: {value}\r\n")
    return ("NATS/1.0\r\n" + "".join(lines) + "\r\n").encode()


# event_block: the lines after ce-type (subject, time, ... idempotencykey), in to_binary's order
_LATER = STRING_ATTRS[STRING_ATTRS.index("type") + 1 :]
_LATER_NAMES = tuple(f"ce-{name}: " for name in _LATER)
_varying = operator.attrgetter("id", *_LATER)
_Lines = tuple[str, str, str] | None
_constant: dict[tuple[str, str, str, str | None], _Lines] = {}  # (bounded)


def _constant_lines(specversion: str, source: str, type_: str, content_type: str | None) -> _Lines:
    """The lines of the attributes one producer usually keeps (source, type, content
    type), as :func:`event_block` joins them around the id: up to the id, from it to the
    later lines, from those to the ``Nats-Msg-Id`` value; ``None``: one is escaped (the
    general way)."""
    if NEEDS_ESCAPE.search(specversion + source + type_) is not None:
        return None
    if content_type is None:
        ct = ""
    elif content_type.isascii() and content_type.isprintable() and content_type == content_type.strip():
        ct = f"content-type: {content_type}\r\n"
    else:
        return None
    return (
        f"NATS/1.0\r\nce-specversion: {specversion}\r\nce-id: ",
        f"\r\nce-source: {source}\r\nce-type: {type_}\r\n",
        f"{ct}Nats-Msg-Id: ",
    )


def event_block(event: Event[Any]) -> bytes | None:
    """The header block of ``event`` in binary content mode with ``Nats-Msg-Id`` —
    byte for byte what ``header_block(ce_headers(event))`` gives — built without a dict,
    the lines of source, type and content type kept per producer; ``None`` for an event
    the general way builds (extensions, a deadline, an escaped value)."""
    if event.extensions or event.deadline is not None or event.cwversion != 1:
        return None
    key = (event.specversion, event.source, event.type, event.datacontenttype)
    try:
        constant = _constant[key]
    except KeyError:
        constant = _constant_lines(*key)
        if len(_constant) >= 1024:
            _constant.clear()
        _constant[key] = constant
    if constant is None:
        return None
    id_, time = event.id, event.time
    if (  # the usual event: a time, no attribute after type but it
        time is not None
        and event.subject is None
        and event.dataschema is None
        and event.correlationid is None
        and event.causationid is None
        and event.traceparent is None
        and event.tracestate is None
        and event.partitionkey is None
        and event.idempotencykey is None
    ):
        text = id_ + time
        later = f"ce-time: {time}\r\n"
    else:
        values = _varying(event)
        text = "".join(filter(None, values))
        later = "".join(
            [f"{name}{value}\r\n" for name, value in zip(_LATER_NAMES, values[1:], strict=True) if value is not None]
        )
    if not (text.isascii() and text.isprintable()) or " " in text or '"' in text or "%" in text:
        return None  # escaped (NEEDS_ESCAPE): the general way
    head, middle, tail = constant
    return f"{head}{id_}{middle}{later}{tail}{id_}\r\n\r\n".encode()


def prepare(events: Sequence[Event[Any]], prefix: str, *, cloudevents: bool, limit: int) -> list[Message]:
    """The messages for a batch of events, on ``<prefix>.<type>``.

    With ``cloudevents`` (the default) each is a CloudEvent in binary content mode:
    attributes as ``ce-*`` headers, ``data`` as the body (see :mod:`crosswire._binary`);
    without, the body is the whole MessagePack envelope and the only header is
    ``Nats-Msg-Id`` (fewer bytes to parse; only crosswire reads it). Both carry
    ``Nats-Msg-Id`` = ``id`` for JetStream's duplicate window, and both decode.

    :raises ConfigurationError: not an Event, or a type that is no valid subject.
    :raises PayloadTooLargeError: an event with its headers exceeds ``limit`` (the
        server would drop the connection over it).
    """
    prepared: list[Message] = []
    subjects: dict[str, str] = {}  # event type -> its subject, checked (this batch's)
    for event in events:
        if not isinstance(event, Event):
            raise ConfigurationError(f"publish takes Events, got a {type(event).__name__}")
        type_ = event.type
        subject = subjects.get(type_)
        if subject is None:
            if type_ not in _valid_types:
                check_subject_part("event type", type_, wildcards=False)
                if len(_valid_types) >= 4096:
                    _valid_types.clear()
                _valid_types[type_] = None
            subject = subjects[type_] = f"{prefix}.{type_}"
        headers: dict[str, str] | bytes | None
        if cloudevents and (headers := event_block(event)) is not None:
            body = event.data or b""
            size = len(headers) + len(body)
        else:
            if cloudevents:
                fields, body = to_binary(event)
                fields["Nats-Msg-Id"] = event.id
            else:
                fields, body = {"Nats-Msg-Id": event.id}, encode_event(event)
            block = header_block(fields)
            headers = block if block is not None else fields
            size = message_size(body, headers)
        if size > limit:
            raise PayloadTooLargeError(
                f"event {event.id} ({event.type}) is {size} bytes with its headers "
                f"({len(body)} body + {size - len(body)} headers); the server accepts at most "
                f"{limit} bytes (max_payload)",
                size=size,
                limit=limit,
            )
        prepared.append((subject, body, headers))
    return prepared


def message_size(body: bytes, headers: dict[str, str] | bytes | None) -> int:
    """The bytes the server counts against ``max_payload``: body plus the header block
    as the client encodes it (``NATS/1.0\r\n``, ``key: value\r\n`` each, ``\r\n``)."""
    if not headers:
        return len(body)
    if isinstance(headers, bytes):
        return len(headers) + len(body)
    size = 12
    for key, value in headers.items():
        size += len(key.strip().encode()) + len(value.strip().encode()) + 4
    return size + len(body)


def ce_headers(event: Event[Any]) -> dict[str, str]:
    """The headers an event is published with in binary content mode (``Nats-Msg-Id``
    and the ``ce-*`` attributes, ``Content-Type``)."""
    headers, _ = to_binary(event)
    headers["Nats-Msg-Id"] = event.id
    return headers


class _ApiError(msgspec.Struct):
    err_code: int = 0
    description: str = ""


class PubAck(msgspec.Struct):
    """JetStream's answer to a publish: ``{"stream": .., "seq": ..}`` or ``{"error": ..}``."""

    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None


_puback_decoder = msgspec.json.Decoder(PubAck)
decode_puback = _puback_decoder.decode
"""A pub-ack's JSON as a :class:`PubAck` (:class:`msgspec.DecodeError` if it is none)."""


def stored(data: bytes) -> bool:
    """Whether ``data`` is the usual pub-ack, the message stored (``{"stream":..}``
    without an ``"error"``), told without decoding it; ``False``: decode to know."""
    return data.startswith(b'{"stream":') and data[-1] == 125 and data.find(b'"error"') < 0  # 125: "}"


class PublishBatch:
    """Acks still awaited for one batch of published messages.

    ``error``/``error_code`` hold the last error the broker answered; ``seq`` the last
    stream sequence; ``failed`` maps the index of each refused message to its error code
    (0 when the broker gave none).
    """

    __slots__ = ("_last", "_seen", "done", "error", "error_code", "failed", "remaining")

    def __init__(self, remaining: int, done: asyncio.Future[None]) -> None:
        self.remaining = remaining
        self.done = done
        self.error: str | None = None
        self.error_code: int | None = None
        self.failed: dict[int, int] = {}
        self._seen = bytearray(remaining)  # 1: the message of that index was answered
        self._last = b""  # the last pub-ack that stored its message (read by seq)

    @property
    def seq(self) -> int:
        """The stream sequence of the last pub-ack that stored its message (0: none)."""
        if not self._last:
            return 0
        try:
            return _puback_decoder.decode(self._last).seq
        except msgspec.DecodeError:
            return 0

    def answered(self, index: bytes, data: bytes, headers: dict[str, str] | None) -> bool:
        """Count the answer to message ``index`` (the token of its reply subject); whether
        it was the last one awaited. A repeated or unknown index counts nothing."""
        if not index.isdigit() or (at := int(index)) >= len(self._seen) or self._seen[at]:
            return False
        self._seen[at] = 1
        if stored(data):
            self._last = data  # stored (the usual answer: decoded only if seq is asked for)
        elif not data:  # a status message: 503 = no stream listens on this subject
            status = (headers or {}).get("Status", "?")
            self.error = f"no stream for this subject (status {status})"
            self.failed[at] = NO_STREAM
        else:
            try:
                ack = _puback_decoder.decode(data)
            except msgspec.DecodeError:
                self.error = data.decode(errors="replace")
                self.failed[at] = 0
            else:
                if ack.error is not None:
                    self.error = ack.error.description or f"error code {ack.error.err_code}"
                    self.error_code = ack.error.err_code
                    self.failed[at] = ack.error.err_code
                else:
                    self._last = data
        self.remaining -= 1
        return self.remaining == 0


_third = operator.itemgetter(2)
_BLOCK_TYPES = {bytes, type(None)}


def _blocks(messages: Sequence[Message]) -> Sequence[tuple[str, bytes, bytes | None]] | None:
    """The messages with their headers as blocks; ``None``: one has headers nats-py
    rewrites or refuses (:func:`header_block`)."""
    if set(map(type, map(_third, messages))) <= _BLOCK_TYPES:  # the usual batch: blocks already
        return messages  # type: ignore[return-value]
    out: list[tuple[str, bytes, bytes | None]] = []
    for subject, body, headers in messages:
        if isinstance(headers, dict):
            block = header_block(headers)
            if block is None:
                return None
            out.append((subject, body, block))
        else:
            out.append((subject, body, headers))
    return out


class Publisher:
    """Publishes messages to JetStream on one connection and awaits their acks.

    :param nc: the connection.
    :param timeout: how long :meth:`send` waits for a batch's acks (up to 50 ms more).
    :param last_error: returns the connection's last asynchronous error (for messages).
    """

    def __init__(self, nc: Client, timeout: float, last_error: Callable[[], str | None]) -> None:
        self._nc = nc
        self._timeout = timeout
        self._last_error = last_error
        self._prefix: str | None = None
        self._seq = 0
        self._awaiting: dict[bytes, PublishBatch] = {}  # batch token -> the batch
        self._deadlines: deque[tuple[float, asyncio.Future[None]]] = deque()  # oldest first
        self._scanning: asyncio.TimerHandle | None = None

    async def send(self, messages: Sequence[Message], what: str) -> PublishBatch:
        """Publish ``messages`` and await their acks: all are written before any ack is
        awaited (one round trip per batch).

        :raises TransportError: not every ack arrived within the timeout, or the
            connection refused the messages.
        """
        nc = self._nc
        if self._prefix is None:
            self._prefix = nc.new_inbox()
            sub = await nc.subscribe(f"{self._prefix}.*.*", cb=self._on_ack)
            nc.direct(sub._id, self._on_frame)
        loop = asyncio.get_running_loop()
        self._seq += 1
        token = b"%d" % self._seq
        batch = PublishBatch(len(messages), loop.create_future())
        self._awaiting[token] = batch
        # message i of the batch is answered on <inbox>.<batch token>.<i>
        prefix = f"{self._prefix}.{self._seq}."
        try:
            blocks = _blocks(messages)
            if blocks is not None:
                nc.publish_batch(blocks, prefix, 0)
            else:  # headers nats-py rewrites or refuses: its own publish, one by one
                for index, (subject, body, headers) in enumerate(messages):
                    reply = f"{prefix}{index}"
                    if isinstance(headers, dict):
                        await nc.publish(subject, body, reply=reply, headers=headers)
                    else:
                        nc.publish_now(subject, body, reply, headers)
            if not batch.done.done():
                self._deadlines.append((loop.time() + self._timeout, batch.done))
                if self._scanning is None:
                    self._scanning = loop.call_later(_SCAN, self._scan)
                await batch.done  # TimeoutError: set by _scan
        except TimeoutError:
            last = self._last_error()
            raise TransportError(
                f"publish to {what}: {batch.remaining} of {len(messages)} messages not "
                f"acknowledged within {self._timeout}s" + (f" (last error: {last})" if last else "")
            ) from None
        except nats.errors.Error as exc:
            raise TransportError(f"publish to {what} failed: {exc!r}") from exc
        finally:
            del self._awaiting[token]
        return batch

    def _scan(self) -> None:
        """Fail the batches whose time is up (within ``_SCAN`` of it); forget the done."""
        self._scanning = None
        deadlines = self._deadlines
        now = asyncio.get_running_loop().time()
        while deadlines and (deadlines[0][1].done() or deadlines[0][0] <= now):
            _, done = deadlines.popleft()
            if not done.done():
                done.set_exception(TimeoutError())
        if len(deadlines) > 4096:  # done ones behind a waiting one: drop them too (bounded)
            self._deadlines = deque(item for item in deadlines if not item[1].done())
        if self._deadlines:
            self._scanning = asyncio.get_running_loop().call_later(_SCAN, self._scan)

    def _on_frame(self, subject: bytes, reply: bytes, data: bytes, block: bytes | None) -> bool:
        """A pub-ack, straight from the read loop; ``False`` for a status (nats-py's path)."""
        if not data:
            return False
        self._acked(subject, data, None)
        return True

    async def _on_ack(self, msg: Msg) -> None:
        self._acked(msg.subject.encode(), msg.data, msg.headers)

    def _acked(self, subject: bytes, data: bytes, headers: dict[str, str] | None) -> None:
        """The answer to one message, on ``<inbox>.<batch token>.<index>``."""
        _, token, index = subject.rsplit(b".", 2)  # (the subscription is <inbox>.*.*)
        batch = self._awaiting.get(token)
        if batch is None:
            return  # a late ack of a batch that already timed out
        if batch.answered(index, data, headers) and not batch.done.done():
            batch.done.set_result(None)
