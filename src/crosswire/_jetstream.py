"""The NATS JetStream transport: durable streams, durable pull consumers.

Layout on the broker (``stream="CROSSWIRE"``, ``subject_prefix="cw"``)::

    stream CROSSWIRE       subjects cw.>   file storage, duplicate window 2 min
      cw.<event.type>      one message per accepted event: body = MessagePack envelope,
                           headers Nats-Msg-Id = event id, ce-* = CloudEvents attributes
      consumer <group>     one durable pull consumer per subscription group,
                           filter cw.<pattern>, AckExplicit, max_ack_pending = prefetch

Publishing pipelines the whole batch (every message is written before any ack is
awaited) and returns once JetStream acknowledged every message: they are stored.
``Nats-Msg-Id`` makes a re-publish of an accepted event (same id, within the
duplicate window) a no-op on the broker.

Consuming keeps pull requests outstanding (``prefetch`` messages, topped up when half
were delivered), so the broker streams messages while earlier ones are handled. Each
:class:`JetStreamDelivery` settles through its own reply subject: ``ack`` (``+ACK``),
``retry`` (``-NAK`` with a delay), ``terminate`` (``+TERM``), ``in_progress``
(``+WPI``). Settlement messages are buffered and flushed in batches by the client
instead of awaiting a round trip each; the first settlement stands, later calls do
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from ._embedded import EmbeddedServer
from ._envelope import Event, decode_event, encode_event
from ._exceptions import ClosedError, ConfigurationError, EnvelopeDecodeError, TransportError
from ._transports.base import Features

if TYPE_CHECKING:
    from ._jetstream_dlq import JetStreamDeadLetterStore
    from ._jetstream_kv import JetStreamIdempotencyStore

__all__ = ["JetStreamDelivery", "JetStreamSubscription", "JetStreamTransport", "consumer_name"]

_DUPLICATE_WINDOW = 120.0
_PULL_EXPIRES = 5.0
_PULL_HEARTBEAT = 1.0
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]+$")
_CONSUMER_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")
_ACK = b"+ACK"
_TERM = b"+TERM"
_WPI = b"+WPI"
_NAK = b"-NAK"


def consumer_name(group: str) -> str:
    """The durable consumer name for a subscription group.

    NATS names allow ``A-Z a-z 0-9 _ -``; any other character becomes ``_`` and a
    short hash of the original group is appended, so distinct groups never share a
    consumer and every node derives the same name.
    """
    if not group:
        raise ConfigurationError("subscription group must not be empty")
    safe = _CONSUMER_UNSAFE.sub("_", group)
    if safe != group or len(safe) > 200:
        digest = hashlib.sha256(group.encode()).hexdigest()[:10]
        safe = f"{safe[:180]}_{digest}"
    return safe


def _check_subject_part(kind: str, value: str, *, wildcards: bool) -> None:
    tokens = value.split(".")
    for i, token in enumerate(tokens):
        if wildcards and (token == "*" or (token == ">" and i == len(tokens) - 1)):
            continue
        if not token or any(c in token for c in " \t\r\n*>"):
            raise ConfigurationError(
                f"{kind} {value!r} is not a valid NATS subject part: tokens are separated "
                "by single dots and may not be empty or contain whitespace, '*' or '>'"
                + (" (except whole-token '*' and a final '>')" if wildcards else "")
            )


def _header_safe(value: str) -> bool:
    return "\r" not in value and "\n" not in value


def _ce_headers(event: Event[Any]) -> dict[str, str]:
    """``Nats-Msg-Id`` plus the CloudEvents binary-mode attributes as ``ce-*`` headers.

    The body carries the whole envelope; the headers let NATS tooling and CloudEvents
    consumers see the attributes without decoding it. Values that a header line cannot
    hold (CR/LF) are left to the body.
    """
    headers = {
        "Nats-Msg-Id": event.id,
        "ce-specversion": event.specversion,
        "ce-id": event.id,
        "ce-source": event.source,
        "ce-type": event.type,
    }
    for name in (
        "time",
        "subject",
        "datacontenttype",
        "dataschema",
        "partitionkey",
        "traceparent",
        "tracestate",
        "correlationid",
        "causationid",
        "idempotencykey",
    ):
        value = getattr(event, name)
        if value is not None and _header_safe(value):
            headers[f"ce-{name}"] = value
    if event.deadline is not None:
        headers["ce-deadline"] = str(event.deadline)
    return headers


def _ack_info(reply: str) -> tuple[int, int]:
    """(delivery count, stream sequence) from a ``$JS.ACK`` reply subject (v1 and v2)."""
    tokens = reply.split(".")
    try:
        if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
            return int(tokens[4]), int(tokens[5])
        if len(tokens) >= 11:  # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>...
            return int(tokens[6]), int(tokens[7])
    except ValueError:
        pass
    return 1, 0


class JetStreamDelivery:
    """One delivery of one message to one subscription.

    Settled through its own ``$JS.ACK`` reply subject. The first settlement stands;
    later settlements are no-ops. JetStream itself applies an ack by stream sequence,
    whichever delivery sent it; so once a newer delivery of the same message reached
    this subscription (this one's lease ran out), this one is *superseded*: its
    settlements are dropped and the newer delivery's outcome decides. Not thread-safe.
    """

    __slots__ = (
        "_decode_error",
        "_event",
        "_raw",
        "_reply",
        "_settled",
        "_sub",
        "_superseded",
        "attempt",
        "stream_sequence",
    )

    def __init__(self, sub: JetStreamSubscription, data: bytes, reply: str) -> None:
        self._sub = sub
        self._raw = data
        self._reply = reply
        self._settled = False
        self._superseded = False
        self.attempt, self.stream_sequence = _ack_info(reply)
        try:
            self._event: Event[Any] | None = decode_event(data)
            self._decode_error: str | None = None
        except EnvelopeDecodeError as exc:
            self._event = None
            self._decode_error = str(exc)

    @property
    def event(self) -> Event[Any] | None:
        return self._event

    @property
    def raw(self) -> bytes:
        return self._raw

    @property
    def decode_error(self) -> str | None:
        return self._decode_error

    @property
    def settled(self) -> bool:
        return self._settled

    @property
    def superseded(self) -> bool:
        """A newer delivery of the same message arrived; settling this one does nothing."""
        return self._superseded

    async def ack(self) -> None:
        await self._settle(_ACK)

    async def retry(self, after: float) -> None:
        delay = {"delay": int(after * 1_000_000_000)}
        await self._settle(_NAK + b" " + json.dumps(delay).encode() if after > 0 else _NAK)

    async def terminate(self) -> None:
        await self._settle(_TERM)

    async def in_progress(self) -> None:
        if self._settled or self._superseded:
            return
        await self._sub._send(self._reply, _WPI)

    async def _settle(self, body: bytes) -> None:
        if self._settled:
            return
        self._settled = True
        self._sub._settled(self)
        if not self._superseded:
            await self._sub._send(self._reply, body)

    def __repr__(self) -> str:
        kind = self._event.type if self._event is not None else "<undecodable>"
        return f"<JetStreamDelivery {kind} attempt={self.attempt} settled={self._settled}>"


class JetStreamSubscription:
    """Deliveries of one durable pull consumer, as an async iterator.

    Keeps up to ``prefetch`` messages requested from the broker. ``close()`` stops
    pulling and naks every delivery not yet settled, so the consumer's other members
    (or a later subscription) get them without waiting for ``ack_wait``.
    """

    def __init__(
        self,
        transport: JetStreamTransport,
        stream: str,
        consumer: str,
        prefetch: int,
    ) -> None:
        self._transport = transport
        self._nc = transport._client()
        self._stream = stream
        self._consumer = consumer
        self._prefetch = prefetch
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = self._nc.new_inbox()
        self._queue: asyncio.Queue[JetStreamDelivery | None] = asyncio.Queue()
        self._unsettled: set[JetStreamDelivery] = set()
        # stream sequence -> newest delivery, shared by this transport's subscriptions
        # of the same consumer (a redelivery may reach a sibling)
        self._latest: dict[int, JetStreamDelivery] = transport._latest.setdefault(consumer, {})
        self._requested = 0
        self._refill = max(1, prefetch // 2)  # ask for more once this much room is free
        self._wake = asyncio.Event()
        self._last_activity = time.monotonic()
        self._closed = False
        self._sub: Any = None
        self._pull_task: asyncio.Task[None] | None = None
        self.received = 0
        self.acked = 0

    @property
    def consumer(self) -> str:
        return self._consumer

    async def _start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)
        self._pull_task = asyncio.create_task(self._pull_loop(), name=f"crosswire-pull-{self._consumer}")

    async def _on_msg(self, msg: Msg) -> None:
        self._last_activity = time.monotonic()
        if not msg.reply:
            self._on_status(msg)
            return
        self._requested = max(0, self._requested - 1)
        if self._closed:
            with contextlib.suppress(Exception):
                await self._nc.publish(msg.reply, _NAK)
            return
        delivery = JetStreamDelivery(self, msg.data, msg.reply)
        self.received += 1
        previous = self._latest.get(delivery.stream_sequence)
        if previous is not None:  # its lease ran out and the broker sent the message again
            previous._superseded = True
            self._unsettled.discard(previous)
        self._latest[delivery.stream_sequence] = delivery
        self._unsettled.add(delivery)
        self._queue.put_nowait(delivery)

    def _on_status(self, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get("Status", "")
        if status == "100":  # idle heartbeat: the pull is alive
            return
        # 408 (request expired), 409 (consumer limit / deleted / leadership change),
        # 404 (no messages): the request is over; Nats-Pending-Messages says how many
        # of its messages will not come.
        pending = headers.get("Nats-Pending-Messages")
        if pending is not None and pending.isdigit():
            self._requested = max(0, self._requested - int(pending))
        else:
            self._requested = 0
        self._wake.set()

    async def _pull_loop(self) -> None:
        expires_ns = int(_PULL_EXPIRES * 1_000_000_000)
        heartbeat_ns = int(_PULL_HEARTBEAT * 1_000_000_000)
        while not self._closed:
            if time.monotonic() - self._last_activity > 3 * _PULL_HEARTBEAT:
                # No message nor heartbeat for a while: the requests were lost (broker
                # restart, reconnect). Ask again.
                self._requested = 0
                self._last_activity = time.monotonic()
            # Room = prefetch minus what is requested and what is held unsettled (queued
            # or being handled): each subscription holds at most ``prefetch``.
            want = self._prefetch - self._requested - len(self._unsettled)
            if want >= self._refill and self._nc.is_connected:
                request = json.dumps({"batch": want, "expires": expires_ns, "idle_heartbeat": heartbeat_ns}).encode()
                try:
                    await self._nc.publish(self._next_subject, request, reply=self._inbox)
                    self._requested += want
                except Exception:  # not connected: the next round asks again
                    pass
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=_PULL_HEARTBEAT)

    def _reset_pulls(self) -> None:
        self._requested = 0
        self._wake.set()

    def _settled(self, delivery: JetStreamDelivery) -> None:
        self._unsettled.discard(delivery)
        if self._prefetch - self._requested - len(self._unsettled) >= self._refill:
            self._wake.set()
        if self._latest.get(delivery.stream_sequence) is delivery:
            del self._latest[delivery.stream_sequence]
        self.acked += 1

    async def _send(self, reply: str, body: bytes) -> None:
        try:
            await self._nc.publish(reply, body)
        except Exception as exc:
            raise TransportError(f"cannot settle delivery on {self._consumer}: {exc}") from exc

    def __aiter__(self) -> AsyncIterator[JetStreamDelivery]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[JetStreamDelivery]:
        while not self._closed:
            delivery = await self._queue.get()
            if delivery is None:
                self._queue.put_nowait(None)  # for any other iterator
                return
            yield delivery

    async def close(self) -> None:
        """Stop pulling; return unsettled deliveries to the broker. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._pull_task is not None:
            self._pull_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pull_task
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        for delivery in list(self._unsettled):
            with contextlib.suppress(TransportError):
                await delivery.retry(0)
        # No flush here: the client's flusher sends the naks, and concurrent timed
        # flushes trip a bug in the client's PONG handling.
        while not self._queue.empty():  # already returned to the broker above
            self._queue.get_nowait()
        self._queue.put_nowait(None)
        self._transport._subscriptions.discard(self)

    def statistics(self) -> dict[str, Any]:
        return {
            "consumer": self._consumer,
            "received": self.received,
            "settled": self.acked,
            "unsettled": len(self._unsettled),
            "queued": self._queue.qsize(),
            "requested": self._requested,
        }


class _ApiError(msgspec.Struct):
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    """JetStream's answer to a publish: ``{"stream": .., "seq": ..}`` or ``{"error": ..}``."""

    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None


_puback_decoder = msgspec.json.Decoder(_PubAck)


class _PublishBatch:
    """Acks still awaited for one batch of published messages."""

    __slots__ = ("done", "error", "error_code", "remaining", "seq")

    def __init__(self, remaining: int, done: asyncio.Future[None]) -> None:
        self.remaining = remaining
        self.done = done
        self.error: str | None = None
        self.error_code: int | None = None
        self.seq = 0


class JetStreamTransport:
    """A durable transport on NATS JetStream.

    With ``url=None`` it starts and supervises an :class:`EmbeddedServer` (local
    ``nats-server -js`` on 127.0.0.1, data in ``data_dir``). With a URL (or a list of
    them) it joins that server or cluster, authenticating with ``user``/``password``,
    ``token``, ``nkeys_seed`` (a seed file) or ``credentials`` (a ``.creds`` file), over
    TLS when ``tls`` is an :class:`ssl.SSLContext` (or the URL is ``tls://``).

    :param stream: the JetStream stream name (created or updated on start).
    :param subject_prefix: events are published on ``<prefix>.<event.type>``.
    :param fsync: embedded server only: fsync every write.
    :param max_age: how long the stream keeps events (seconds; ``None``: no limit).
    :param publish_timeout: how long ``publish`` waits for the broker's acks.
    :param replicas: stream replicas (on a cluster).
    :param max_ack_pending: unacknowledged messages allowed per consumer, i.e. per
        group, shared by every node of the group; default: the subscription's
        ``prefetch``. Each subscription still holds at most ``prefetch``, so when N
        nodes share a group, ``N * prefetch`` lets all of them work at full depth.
    :param cloudevents_headers: also send the CloudEvents attributes as ``ce-*``
        headers (binary content mode), for NATS tooling and CloudEvents consumers.
        ``False`` sends only ``Nats-Msg-Id``: the body has every attribute anyway, and
        header handling is about a third of the client's work per event.

    Not thread-safe; use from one event loop. An async context manager.
    """

    features = Features(durable=True, ordered_per_key=True, consumer_groups=True, redelivery=True, wildcards=True)

    def __init__(
        self,
        url: str | Sequence[str] | None = None,
        *,
        data_dir: str = ".crosswire",
        stream: str = "CROSSWIRE",
        subject_prefix: str = "cw",
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        nkeys_seed: str | None = None,
        credentials: str | None = None,
        tls: ssl.SSLContext | None = None,
        fsync: bool = False,
        cloudevents_headers: bool = True,
        max_ack_pending: int | None = None,
        max_age: float | None = 7 * 24 * 3600.0,
        publish_timeout: float = 10.0,
        replicas: int = 1,
        connect_timeout: float = 5.0,
        name: str = "crosswire",
    ) -> None:
        if not _TOKEN.match(stream):
            raise ConfigurationError(f"stream name {stream!r} must be letters, digits, '_' or '-'")
        _check_subject_part("subject_prefix", subject_prefix, wildcards=False)
        if publish_timeout <= 0 or connect_timeout <= 0:
            raise ConfigurationError("publish_timeout and connect_timeout must be > 0")
        if replicas < 1:
            raise ConfigurationError("replicas must be >= 1")
        if max_age is not None and max_age <= 0:
            raise ConfigurationError("max_age must be > 0 or None")
        self.url = url
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.data_dir = data_dir
        self.max_age = max_age
        self.publish_timeout = publish_timeout
        self.replicas = replicas
        self.cloudevents_headers = cloudevents_headers
        if max_ack_pending is not None and max_ack_pending < 1:
            raise ConfigurationError("max_ack_pending must be >= 1 or None")
        self.max_ack_pending = max_ack_pending
        self._connect_options: dict[str, Any] = {
            "user": user,
            "password": password,
            "token": token,
            "nkeys_seed": nkeys_seed,
            "user_credentials": credentials,
            "tls": tls,
            "connect_timeout": connect_timeout,
            "name": name,
        }
        self._server: EmbeddedServer | None = EmbeddedServer(data_dir, fsync=fsync) if url is None else None
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._subscriptions: set[JetStreamSubscription] = set()
        self._ack_prefix: str | None = None
        self._latest: dict[str, dict[int, JetStreamDelivery]] = {}
        self._ack_seq = 0
        self._awaiting: dict[str, _PublishBatch] = {}
        self._lock = asyncio.Lock()
        self._last_error: str | None = None
        self._recent_errors: deque[str] = deque(maxlen=8)
        self.published = 0
        self.reconnects = 0

    # -- lifecycle -----------------------------------------------------------------

    @property
    def server(self) -> EmbeddedServer | None:
        """The embedded server, when this transport owns one."""
        return self._server

    @property
    def connection(self) -> NatsClient:
        """The NATS connection (after ``start()``)."""
        return self._client()

    @property
    def jetstream(self) -> JetStreamContext:
        """The JetStream context (after ``start()``)."""
        if self._js is None:
            raise ClosedError("the JetStream transport is not started")
        return self._js

    def _client(self) -> NatsClient:
        if self._nc is None:
            raise ClosedError("the JetStream transport is not started")
        return self._nc

    async def __aenter__(self) -> JetStreamTransport:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the embedded server (if any), connect, create or update the stream.

        :raises TransportError: the broker is unreachable or refused the stream.
        """
        async with self._lock:
            if self._nc is not None:
                return
            if self._server is not None:
                await self._server.start()
                servers: str | list[str] = self._server.url
            elif isinstance(self.url, str):
                servers = self.url
            else:
                assert self.url is not None
                servers = list(self.url)
            nc = NatsClient()
            self._recent_errors.clear()
            connect_timeout = self._connect_options["connect_timeout"]
            try:
                # Bounded as a whole: a server that accepts TCP but stalls (e.g. a TLS
                # handshake that never completes) must not hang start().
                async with asyncio.timeout(4 * connect_timeout + 2):
                    await nc.connect(servers=servers, **self._client_options())
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await nc.close()
                if self._server is not None:
                    await self._server.stop()
                seen = list(dict.fromkeys(self._recent_errors))  # distinct, in order
                cause = f" (errors: {'; '.join(seen)})" if seen else ""
                reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
                raise TransportError(f"cannot connect to NATS at {servers}: {reason}{cause}") from exc
            nc.options["max_reconnect_attempts"] = -1
            self._nc = nc
            self._js = nc.jetstream(timeout=self.publish_timeout)
            try:
                await self._ensure_stream()
            except Exception:
                await self.close()
                raise

    def _client_options(self) -> dict[str, Any]:
        return {
            "allow_reconnect": True,
            # A few tries at first (an unreachable URL is an error at start); once
            # connected, reconnect forever (set after connecting).
            "max_reconnect_attempts": 3,
            "reconnect_time_wait": 0.25,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            "closed_cb": self._on_closed,
            **{k: v for k, v in self._connect_options.items() if v is not None},
        }

    async def _ensure_stream(self) -> None:
        config = api.StreamConfig(
            name=self.stream,
            subjects=[f"{self.subject_prefix}.>"],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            duplicate_window=_DUPLICATE_WINDOW,
            max_age=self.max_age,
            num_replicas=self.replicas,
        )
        await ensure_stream(self.jetstream, config)

    async def close(self) -> None:
        """Close subscriptions, flush settlements, disconnect, stop the embedded server.
        Idempotent."""
        for sub in list(self._subscriptions):
            await sub.close()
        nc, self._nc, self._js = self._nc, None, None
        self._ack_prefix = None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.flush(timeout=2)
            with contextlib.suppress(Exception):
                await nc.close()
        if self._server is not None:
            await self._server.stop()

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = f"{type(exc).__name__}: {exc}"
        self._recent_errors.append(self._last_error)

    async def _on_disconnected(self) -> None:
        for sub in self._subscriptions:
            sub._reset_pulls()

    async def _on_reconnected(self) -> None:
        self.reconnects += 1
        for sub in self._subscriptions:
            sub._reset_pulls()

    async def _on_closed(self) -> None:
        pass

    # -- publish ---------------------------------------------------------------------

    def subject_for(self, event_type: str) -> str:
        """The subject an event of ``event_type`` is published on."""
        return f"{self.subject_prefix}.{event_type}"

    async def publish(self, events: Sequence[Event[Any]]) -> None:
        """Publish a batch: every message is written, then every ack awaited.

        :raises ConfigurationError: an event type is not a valid subject (nothing sent).
        :raises TransportError: the broker did not accept every event in time; the
            caller may publish the batch again (``Nats-Msg-Id`` dedups what was stored).
        """
        self._client()
        if not events:
            return
        prepared = []
        for event in events:
            _check_subject_part("event type", event.type, wildcards=False)
            headers = _ce_headers(event) if self.cloudevents_headers else {"Nats-Msg-Id": event.id}
            prepared.append((self.subject_for(event.type), encode_event(event), headers))
        batch = await self._send(prepared, f"stream {self.stream}")
        if batch.error is not None:
            raise TransportError(f"publish to stream {self.stream} failed: {batch.error}")
        self.published += len(prepared)

    async def _send(self, messages: Sequence[tuple[str, bytes, dict[str, str] | None]], what: str) -> _PublishBatch:
        """Publish ``(subject, body, headers)`` messages to JetStream and await their
        acks: all are written before any ack is awaited (one round trip per batch).
        Acks come back on one inbox per connection, counted per batch, without a
        future or timer per message. The batch's ``error``/``error_code`` hold the
        last error the broker answered; ``seq`` the last stream sequence.

        :raises TransportError: not every ack arrived within ``publish_timeout``, or
            the connection refused the messages.
        """
        nc = self._client()
        if self._ack_prefix is None:
            self._ack_prefix = nc.new_inbox()
            await nc.subscribe(f"{self._ack_prefix}.*", cb=self._on_publish_ack)
        batch = _PublishBatch(len(messages), asyncio.get_running_loop().create_future())
        tokens: list[str] = []
        prefix = self._ack_prefix
        try:
            for subject, body, headers in messages:
                self._ack_seq += 1
                token = str(self._ack_seq)
                self._awaiting[token] = batch
                tokens.append(token)
                await nc.publish(subject, body, reply=f"{prefix}.{token}", headers=headers)
            async with asyncio.timeout(self.publish_timeout):
                await batch.done
        except TimeoutError:
            raise TransportError(
                f"publish to {what}: {batch.remaining} of {len(messages)} messages not "
                f"acknowledged within {self.publish_timeout}s"
                + (f" (last error: {self._last_error})" if self._last_error else "")
            ) from None
        except nats.errors.Error as exc:
            raise TransportError(f"publish to {what} failed: {exc!r}") from exc
        finally:
            for token in tokens:
                self._awaiting.pop(token, None)
        return batch

    async def _on_publish_ack(self, msg: Msg) -> None:
        token = msg.subject[msg.subject.rfind(".") + 1 :]
        batch = self._awaiting.pop(token, None)
        if batch is None:
            return  # a late ack of a batch that already timed out
        data = msg.data
        if not data:  # a status message: 503 = no stream listens on this subject
            status = (msg.headers or {}).get("Status", "?")
            batch.error = f"no stream for this subject (status {status})"
        else:
            try:
                ack = _puback_decoder.decode(data)
            except msgspec.DecodeError:
                batch.error = data.decode(errors="replace")
            else:
                if ack.error is not None:
                    batch.error = ack.error.description or f"error code {ack.error.err_code}"
                    batch.error_code = ack.error.err_code
                else:
                    batch.seq = ack.seq
        batch.remaining -= 1
        if batch.remaining == 0 and not batch.done.done():
            batch.done.set_result(None)

    # -- subscribe -------------------------------------------------------------------

    async def subscribe(
        self, pattern: str, group: str, *, prefetch: int = 256, ack_wait: float = 30.0
    ) -> JetStreamSubscription:
        """A durable pull consumer named after ``group`` on ``<prefix>.<pattern>``.

        Created, or updated to this filter / ack_wait / prefetch, idempotently; every
        subscription with the same group (in this or another process) shares it.

        :raises ConfigurationError: invalid pattern, group, prefetch or ack_wait.
        :raises TransportError: the broker refused the consumer.
        """
        _check_subject_part("pattern", pattern, wildcards=True)
        if prefetch < 1:
            raise ConfigurationError("prefetch must be >= 1")
        if ack_wait <= 0:
            raise ConfigurationError("ack_wait must be > 0")
        name = consumer_name(group)
        nc = self._client()
        config = {
            "durable_name": name,
            "name": name,
            "description": f"crosswire group {group}"[:1000],
            "deliver_policy": "all",
            "ack_policy": "explicit",
            "ack_wait": int(ack_wait * 1_000_000_000),
            "max_deliver": -1,
            "filter_subject": self.subject_for(pattern),
            "replay_policy": "instant",
            "max_ack_pending": self.max_ack_pending or prefetch,
            "max_waiting": 512,
        }
        request = json.dumps({"stream_name": self.stream, "config": config}).encode()
        try:
            reply = await nc.request(
                f"$JS.API.CONSUMER.CREATE.{self.stream}.{name}", request, timeout=self.publish_timeout
            )
        except Exception as exc:
            raise TransportError(f"cannot create consumer {name} on {self.stream}: {exc}") from exc
        answer = json.loads(reply.data)
        if "error" in answer:
            raise TransportError(
                f"cannot create consumer {name} on {self.stream}: {answer['error'].get('description')}"
            )
        sub = JetStreamSubscription(self, self.stream, name, prefetch)
        await sub._start()
        self._subscriptions.add(sub)
        return sub

    # -- stores on the same connection --------------------------------------------

    def idempotency_store(self, *, bucket: str | None = None, ttl: float = 3600.0) -> JetStreamIdempotencyStore:
        """A :class:`~crosswire._jetstream_kv.JetStreamIdempotencyStore` on this connection."""
        from ._jetstream_kv import JetStreamIdempotencyStore

        return JetStreamIdempotencyStore(self, bucket=bucket or f"{self.stream}_DEDUP", ttl=ttl)

    def dead_letter_store(self) -> JetStreamDeadLetterStore:
        """A :class:`~crosswire._jetstream_dlq.JetStreamDeadLetterStore` on this connection."""
        from ._jetstream_dlq import JetStreamDeadLetterStore

        return JetStreamDeadLetterStore(self)

    def statistics(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "url": self._server.url if self._server is not None and self._server.running else self.url,
            "connected": self._nc is not None and self._nc.is_connected,
            "published": self.published,
            "reconnects": self.reconnects,
            "last_error": self._last_error,
            "subscriptions": [s.statistics() for s in self._subscriptions],
        }


async def ensure_stream(js: JetStreamContext, config: api.StreamConfig) -> None:
    """Create the stream, or update it to ``config`` if it exists. Idempotent.

    :raises TransportError: the broker refused.
    """
    assert config.name is not None
    try:
        try:
            await js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            try:
                await js.add_stream(config)
                return
            except nats.js.errors.BadRequestError:
                pass  # created concurrently by another node: update below
        await js.update_stream(config)
    except Exception as exc:
        raise TransportError(f"cannot create or update stream {config.name}: {exc}") from exc
