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
:class:`~.delivery.JetStreamDelivery` settles through nats-py's ``Msg``: ``ack``,
``retry`` (``nak`` with a delay), ``terminate`` (``term``), ``in_progress``.
Settlement messages are buffered and flushed in batches by the client instead of
awaiting a round trip each; the first settlement stands, later calls do nothing.

The package splits by noun: this module (config, connect, streams, consumers),
:mod:`.pull` (pull loop), :mod:`.publish` (pipelined publish acks), :mod:`.delivery`
(settlement), :mod:`.dlq` and :mod:`.kv` (stores), :mod:`.embedded` (local server).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext, api

from ..._envelope import Event, encode_event
from ..._exceptions import ClosedError, ConfigurationError, PayloadTooLargeError, TransportError
from ..base import Features
from .attempts import AttemptStore
from .config import check_stream_name, check_subject_part, consumer_name
from .connection import Confirmer, close_connection, open_connection
from .consumers import Start, check_start, ensure_consumer
from .delivery import JetStreamDelivery
from .dlq import JetStreamDeadLetterStore
from .embedded import EmbeddedServer
from .kv import JetStreamIdempotencyStore
from .publish import Publisher, ce_headers, message_size
from .pull import JetStreamSubscription
from .streams import ensure_stream

__all__ = ["JetStreamTransport"]

_DUPLICATE_WINDOW = 120.0


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
    :param group_start: where a subscription group created from now on starts:
        ``"new"`` (events published after it was created), ``"all"`` (everything the
        stream holds) or a timezone-aware ``datetime``. Default ``None``: ``"all"`` if
        no group consumed the stream yet when the transport started, else ``"new"``.
        A group that exists keeps its position whatever this says.
    :param prefetch_bytes: each subscription holds at most this many bytes of event
        data fetched but not settled (plus one message), besides at most ``prefetch``
        messages; ``None``: no byte bound.
    :param confirm_acks: acks (and terminations) are confirmed by round trips shared
        by every ack of the moment, and at most ``ack_window`` of them per
        subscription are unconfirmed at any time (an ack waits beyond that): a killed
        node's events that were
        handled but whose acks never reached the server — the ones handled again
        elsewhere — are at most ``ack_window``. ``False``: acks are buffered and
        flushed by the client, and under load that backlog is unbounded.
    :param ack_window: see ``confirm_acks``.
    :param group_starts: the same per group (the node names a binding's group
        ``<app name>.<binding name>``), over ``group_start``.

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
        group_start: Start | None = None,
        group_starts: Mapping[str, Start] | None = None,
        prefetch_bytes: int | None = 64 * 1024 * 1024,
        confirm_acks: bool = True,
        ack_window: int = 256,
    ) -> None:
        check_stream_name(stream)
        check_subject_part("subject_prefix", subject_prefix, wildcards=False)
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
        check_start(group_start)
        for value in (group_starts or {}).values():
            check_start(value)
        if prefetch_bytes is not None and prefetch_bytes < 1:
            raise ConfigurationError("prefetch_bytes must be >= 1 or None")
        self.prefetch_bytes = prefetch_bytes
        if ack_window < 1:
            raise ConfigurationError("ack_window must be >= 1")
        self.confirm_acks = confirm_acks
        self.ack_window = ack_window
        self.group_start = group_start
        self.group_starts = dict(group_starts or {})
        self._fresh_stream = False  # no group consumed the stream when this transport started
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
        self._consume: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._subscriptions: set[JetStreamSubscription] = set()
        self._publisher: Publisher | None = None
        self._attempts: AttemptStore | None = None
        self._latest: dict[str, dict[int, JetStreamDelivery]] = {}
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

    @property
    def connected(self) -> bool:
        """Connected to the broker now (``False`` before start, while reconnecting, after close)."""
        nc, consume = self._nc, self._consume
        return nc is not None and consume is not None and nc.is_connected and consume.is_connected

    @property
    def publisher(self) -> Publisher:
        """The connection's pipelined publisher (after ``start()``)."""
        if self._publisher is None:
            raise ClosedError("the JetStream transport is not started")
        return self._publisher

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

        Two connections: one publishes (events, stores, API requests), the other
        consumes (pull requests, deliveries, and their acks and in-progress renewals),
        so a lease renewal or an ack never waits behind a backlog of publishes.

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
            timeout = self._connect_options["connect_timeout"]
            try:
                nc = await open_connection(
                    servers, self._client_options(consume=False), connect_timeout=timeout, errors=self._recent_errors
                )
                try:
                    consume = await open_connection(
                        servers, self._client_options(consume=True), connect_timeout=timeout, errors=self._recent_errors
                    )
                except BaseException:
                    await close_connection(nc)
                    raise
            except BaseException:
                if self._server is not None:
                    await self._server.stop()
                raise
            self._nc, self._consume = nc, consume
            self._js = nc.jetstream(timeout=self.publish_timeout)
            self._publisher = Publisher(nc, self.publish_timeout, lambda: self._last_error)
            self._attempts = AttemptStore(self, ttl=self.max_age)
            try:
                await self._ensure_stream()
            except Exception:
                await self.close()
                raise

    def _client_options(self, *, consume: bool) -> dict[str, Any]:
        options = {k: v for k, v in self._connect_options.items() if v is not None}
        if consume:
            options["name"] = f"{options.get('name', 'crosswire')}-consume"
        return {
            "allow_reconnect": True,
            # A few tries at first (an unreachable URL is an error at start); once
            # connected, reconnect forever (set after connecting).
            "max_reconnect_attempts": 3,
            "reconnect_time_wait": 0.25,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected if consume else _nothing,
            "reconnected_cb": self._on_reconnected if consume else _nothing,
            **options,
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
        info = await ensure_stream(self.jetstream, config)
        self._fresh_stream = not (info.state.consumer_count or 0)

    async def close(self) -> None:
        """Close subscriptions (their hand-backs flushed), flush what was published,
        disconnect, stop the embedded server. Idempotent."""
        for sub in list(self._subscriptions):
            await sub.close()
        nc, consume = self._nc, self._consume
        self._nc = self._consume = self._js = self._publisher = self._attempts = None
        await close_connection(consume)
        await close_connection(nc)
        if self._server is not None:
            await self._server.stop()

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = f"{type(exc).__name__}: {exc}"
        self._recent_errors.append(self._last_error)

    async def _on_disconnected(self) -> None:
        for sub in self._subscriptions:
            sub.reset_pulls()

    async def _on_reconnected(self) -> None:
        self.reconnects += 1
        for sub in self._subscriptions:
            sub.reset_pulls()

    # -- publish ---------------------------------------------------------------------

    def subject_for(self, event_type: str) -> str:
        """The subject an event of ``event_type`` is published on."""
        return f"{self.subject_prefix}.{event_type}"

    async def publish(self, events: Sequence[Event[Any]]) -> None:
        """Publish a batch: every message is written, then every ack awaited.

        :raises ConfigurationError: an event type is not a valid subject (nothing sent).
        :raises PayloadTooLargeError: an event with its headers exceeds the server's
            ``max_payload`` (nothing sent; the connection stays up).
        :raises TransportError: the broker did not accept every event in time; the
            caller may publish the batch again (``Nats-Msg-Id`` dedups what was stored).
        """
        publisher = self.publisher
        if not events:
            return
        limit = self._client().max_payload
        prepared = []
        for event in events:
            if not isinstance(event, Event):
                raise ConfigurationError(f"publish takes Events, got a {type(event).__name__}")
            check_subject_part("event type", event.type, wildcards=False)
            headers = ce_headers(event) if self.cloudevents_headers else {"Nats-Msg-Id": event.id}
            body = encode_event(event)
            # Every header value is also in the envelope, so headers < body + 1 KiB of
            # names and framing: only a large event needs its headers counted.
            if 2 * len(body) + 1024 > limit and (size := message_size(body, headers)) > limit:
                # The server would drop the connection over it: refuse the batch here.
                raise PayloadTooLargeError(
                    f"event {event.id} ({event.type}) is {size} bytes with its headers "
                    f"({len(body)} envelope + {size - len(body)} headers); the server accepts at most "
                    f"{limit} bytes (max_payload)",
                    size=size,
                    limit=limit,
                )
            prepared.append((self.subject_for(event.type), body, headers))
        batch = await publisher.send(prepared, f"stream {self.stream}")
        if batch.error is not None:
            raise TransportError(f"publish to stream {self.stream} failed: {batch.error}")
        self.published += len(prepared)

    # -- subscribe -------------------------------------------------------------------

    async def subscribe(
        self,
        pattern: str,
        group: str,
        *,
        prefetch: int = 256,
        ack_wait: float = 30.0,
        start: Start | None = None,
    ) -> JetStreamSubscription:
        """A durable pull consumer named after ``group`` on ``<prefix>.<pattern>``.

        Created, or updated to this filter / ack_wait / prefetch, idempotently; every
        subscription with the same group (in this or another process) shares it.
        ``start`` (else ``group_starts[group]``, else ``group_start``) says
        where a group created now starts (see :mod:`.consumers`); an existing group
        keeps its position.

        :raises ConfigurationError: invalid pattern, group, prefetch or ack_wait.
        :raises TransportError: the broker refused the consumer.
        """
        check_subject_part("pattern", pattern, wildcards=True)
        if prefetch < 1:
            raise ConfigurationError("prefetch must be >= 1")
        if ack_wait <= 0:
            raise ConfigurationError("ack_wait must be > 0")
        check_start(start)
        name = consumer_name(group)
        nc = self._client()
        begin = start or self.group_starts.get(group) or self.group_start or ("all" if self._fresh_stream else "new")
        config = {
            "durable_name": name,
            "name": name,
            "description": f"crosswire group {group}"[:1000],
            "ack_policy": "explicit",
            "ack_wait": int(ack_wait * 1_000_000_000),
            "max_deliver": -1,
            "filter_subject": self.subject_for(pattern),
            "replay_policy": "instant",
            "max_ack_pending": self.max_ack_pending or prefetch,
            "max_waiting": 512,
        }
        await ensure_consumer(nc, self.stream, name, config, begin, timeout=self.publish_timeout)
        if self._attempts is not None:
            await self._attempts.ensure()
        assert self._consume is not None
        sub = JetStreamSubscription(
            self._consume,
            self.stream,
            name,
            prefetch,
            latest=self._latest.setdefault(name, {}),
            on_close=self._subscriptions.discard,
            attempts=self._attempts,
            subject_prefix=self.subject_prefix,
            prefetch_bytes=self.prefetch_bytes,
            ack_wait=ack_wait,
            confirmer=Confirmer(self._consume, self.publish_timeout, self.ack_window) if self.confirm_acks else None,
        )
        await sub.start()
        self._subscriptions.add(sub)
        return sub

    # -- stores on the same connection --------------------------------------------

    def idempotency_store(self, *, bucket: str | None = None, ttl: float = 3600.0) -> JetStreamIdempotencyStore:
        """A :class:`~crosswire.jetstream.JetStreamIdempotencyStore` on this connection."""
        return JetStreamIdempotencyStore(self, bucket=bucket or f"{self.stream}_DEDUP", ttl=ttl)

    def dead_letter_store(self) -> JetStreamDeadLetterStore:
        """A :class:`~crosswire.jetstream.JetStreamDeadLetterStore` on this connection."""
        return JetStreamDeadLetterStore(self)

    def statistics(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "url": self._server.url if self._server is not None and self._server.running else self.url,
            "connected": self.connected,
            "published": self.published,
            "reconnects": self.reconnects,
            "last_error": self._last_error,
            "subscriptions": [s.statistics() for s in self._subscriptions],
        }


async def _nothing() -> None:
    pass
