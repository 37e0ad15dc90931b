"""The NATS JetStream transport: durable streams, durable pull consumers.

Layout on the broker (``stream="CROSSWIRE"``, ``subject_prefix="cw"``)::

    stream CROSSWIRE       subjects cw.>   file storage, duplicate window 2 min
      cw.<event.type>      one message per accepted event: a CloudEvent in binary mode (ce-*
                           headers, body = data), header Nats-Msg-Id = event id
      consumer <group>     one durable pull consumer per subscription group,
                           filter cw.<pattern>, AckExplicit, max_ack_pending = prefetch

Publishing pipelines the whole batch (every message is written before any ack is
awaited) and returns once JetStream acknowledged every message: they are stored.
``Nats-Msg-Id`` makes a re-publish of an accepted event (same id, within the
duplicate window) a no-op on the broker.

The package splits by noun: this module (the transport), :mod:`.connection`, :mod:`.headers` (the client),
:mod:`.streams`, :mod:`.consumers`, :mod:`.pull` (pull loop), :mod:`.publish` (pipelined publish acks),
:mod:`.delivery` (settlement), :mod:`.attempts`, :mod:`.dlq`, :mod:`.kv` (stores), :mod:`.embedded` (local server).
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

from ..._envelope import Event
from ..._exceptions import ClosedError, ConfigurationError, TransportError
from ..base import Features
from .attempts import AttemptStore
from .broker import EmbeddedBroker
from .config import check_positive, check_stream_name, check_subject_part, consumer_name
from .connection import Confirmer, close_connection, open_connection
from .connection import no_callback as _no_callback
from .consumers import Start, check_start, consumer_config, ensure_consumer
from .delivery import JetStreamDelivery
from .dlq import JetStreamDeadLetterStore
from .embedded import EmbeddedServer
from .headers import Client
from .kv import JetStreamIdempotencyStore
from .publish import Publisher, prepare
from .pull import JetStreamSubscription
from .streams import attach_stream

__all__ = ["JetStreamTransport"]

_DUPLICATE_WINDOW = 120.0


class JetStreamTransport:
    """A durable transport on NATS JetStream.

    With ``url=None`` it starts and supervises an :class:`EmbeddedServer` (local
    ``nats-server -js`` on 127.0.0.1, data in ``data_dir``). With a URL (or a list of
    them) it joins that server or cluster, authenticating with ``user``/``password``,
    ``token``, ``nkeys_seed`` (a seed file) or ``credentials`` (a ``.creds`` file), over
    TLS when ``tls`` is an :class:`ssl.SSLContext` (or the URL is ``tls://``).

    :param stream: the JetStream stream name: created on start if it does not exist,
        else used as it is (see :mod:`.streams`).
    :param subject_prefix: events are published on ``<prefix>.<event.type>``.
    :param fsync: embedded server only: fsync every write.
    :param max_age: how long the stream keeps events (seconds; ``None``: no limit).
    :param publish_timeout: how long ``publish`` waits for the broker's acks.
    :param replicas: replicas of the streams crosswire creates (on a cluster).
    :param duplicate_window: how long the stream remembers event ids (``Nats-Msg-Id``)
        to store a re-published event once, seconds (for a stream crosswire creates).
    :param strict_stream: refuse to start when the existing stream's settings differ
        from these (default: warn and use it as it is).
    :param read_only: never create or change streams or consumers (for commands that
        only read, e.g. ``crosswire dlq list``); a missing stream is an error.
    :param max_ack_pending: unacknowledged messages allowed per consumer, i.e. per
        group, shared by every node of the group; default: the subscription's
        ``prefetch``. Each subscription still holds at most ``prefetch``, so when N
        nodes share a group, ``N * prefetch`` lets all of them work at full depth.
    :param cloudevents_headers: also send the CloudEvents attributes as ``ce-*``
        headers (binary content mode), for NATS tooling and CloudEvents consumers.
        ``False`` sends only ``Nats-Msg-Id``: the body has every attribute anyway, and
        header handling is about a third of the client's work per event.
    :param group_start: where a group created from now on starts: ``"new"``,
        ``"all"`` or an aware ``datetime``; ``None``: see :mod:`.consumers`.
    :param group_starts: the same per group (a node's binding is the group
        ``<app name>.<binding name>``), over ``group_start``.
    :param prefetch_bytes: each subscription holds at most this many bytes of event
        data fetched but not settled (plus one message), besides at most ``prefetch``
        messages; ``None``: no byte bound.
    :param confirm_acks: at most ``ack_window`` acks per subscription are unconfirmed
        by the server at any time (round trips shared by all acks of the moment): the
        events a killed node handled but whose acks were lost are at most that many.
        ``False``: acks are flushed by the client only; under load, unbounded.

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
        duplicate_window: float = _DUPLICATE_WINDOW,
        strict_stream: bool = False,
        read_only: bool = False,
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
        check_positive(
            max_ack_pending=max_ack_pending, prefetch_bytes=prefetch_bytes, ack_window=ack_window, nullable=True
        )
        check_positive(duplicate_window=duplicate_window)
        for value in (group_start, *(group_starts or {}).values()):
            check_start(value)
        self.max_ack_pending = max_ack_pending
        self.prefetch_bytes = prefetch_bytes
        self.duplicate_window = duplicate_window
        self.strict_stream = strict_stream
        self.read_only = read_only
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
        self._broker = EmbeddedBroker(data_dir, fsync=fsync) if url is None else None
        self._nc: NatsClient | None = None
        self._consume: Client | None = None
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

    @property
    def server(self) -> EmbeddedServer | None:
        """The embedded server, when this transport owns one."""
        return self._broker.server if self._broker is not None else None

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
            if self._broker is not None:
                servers: str | list[str] = await self._broker.start()  # owned, or another node's
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
                if self._broker is not None:
                    await self._broker.stop()
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
            "disconnected_cb": self._on_disconnected if consume else _no_callback,
            "reconnected_cb": self._on_reconnected if consume else _no_callback,
            **options,
        }

    async def _ensure_stream(self) -> None:
        config = api.StreamConfig(
            name=self.stream,
            subjects=[f"{self.subject_prefix}.>"],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            duplicate_window=self.duplicate_window,
            max_age=self.max_age,
            num_replicas=self.replicas,
        )
        info = await attach_stream(self.jetstream, config, create=not self.read_only, strict=self.strict_stream)
        if info is None:
            raise TransportError(f"stream {self.stream} does not exist (read-only: nothing was created)")
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
        if self._broker is not None:
            await self._broker.stop()

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
        prepared = prepare(events, self.subject_prefix, cloudevents=self.cloudevents_headers, limit=limit)
        batch = await publisher.send(prepared, f"stream {self.stream}")
        if batch.error is not None:
            raise TransportError(f"publish to stream {self.stream} failed: {batch.error}")
        self.published += len(prepared)

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
        if self.read_only:
            raise ConfigurationError("a read-only JetStream transport does not subscribe (it would create a consumer)")
        if prefetch < 1:
            raise ConfigurationError("prefetch must be >= 1")
        if ack_wait <= 0:
            raise ConfigurationError("ack_wait must be > 0")
        check_start(start)
        name = consumer_name(group)
        nc = self._client()
        begin = start or self.group_starts.get(group) or self.group_start or ("all" if self._fresh_stream else "new")
        config = consumer_config(name, group, self.subject_for(pattern), ack_wait, self.max_ack_pending or prefetch)
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

    def idempotency_store(self, *, bucket: str | None = None, ttl: float = 3600.0) -> JetStreamIdempotencyStore:
        """A :class:`~crosswire.jetstream.JetStreamIdempotencyStore` on this connection."""
        return JetStreamIdempotencyStore(self, bucket=bucket or f"{self.stream}_DEDUP", ttl=ttl)

    def dead_letter_store(self) -> JetStreamDeadLetterStore:
        """A :class:`~crosswire.jetstream.JetStreamDeadLetterStore` on this connection."""
        return JetStreamDeadLetterStore(self)

    def statistics(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "url": self.server.url if self.server is not None and self.server.running else self.url,
            "connected": self.connected,
            "published": self.published,
            "reconnects": self.reconnects,
            "last_error": self._last_error,
            "subscriptions": [s.statistics() for s in self._subscriptions],
        }
