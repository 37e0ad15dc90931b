"""The idempotency store on a JetStream KV bucket, shared by every node of a cluster.

One KV entry per dedup key (the key is hashed: KV keys allow few characters, dedup
keys allow any). Values::

    running <lease-expiry-unix-ms>     a node holds the key (claim → NEW)
    done                               handled successfully (claim → DONE)

Every transition is a compare-and-set on the entry's revision, so two nodes racing
for one key cannot both get ``NEW``: ``claim`` is ``create`` (absent → running),
or ``update(last=revision)`` over an expired lease. ``complete`` puts ``done``;
``release`` deletes the entry (only if it is still the caller's lease). The bucket's
``max_age`` is the store's TTL: a ``done`` key is forgotten after it.

The claims made in one tick of the event loop are written together, and so are the
done markers (see :mod:`.kvbatch`): one socket write, their pub-acks served in the read
loop. ``complete`` does not wait for its marker's pub-ack: a refused or unanswered
marker is logged and counted (``done_unconfirmed`` in
:meth:`~JetStreamIdempotencyStore.statistics`); the key then stays ``running`` until
its lease runs out, and a duplicate arriving after that runs again (at-least-once:
nothing is lost, and no event is acknowledged before its handler finished).
"""

from __future__ import annotations

import asyncio
import time
from binascii import hexlify
from hashlib import sha256
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import api
from nats.js.kv import KeyValue

from ..._exceptions import ConfigurationError, TransportError
from ..._policies.dedup import Claim
from .connection import Connection
from .headers import Client
from .kvbatch import BatchWriter
from .publish import WRONG_LAST_SEQUENCE

__all__ = ["JetStreamIdempotencyStore"]


_DONE = b"done"
_RUNNING = b"running "
_LEASE = _RUNNING + b"%d"
_CLOSED = NatsClient.CLOSED


def _kv_key(key: str) -> bytes:
    """``key``'s KV key: its SHA-256 in hex (a valid key token whatever ``key`` holds)."""
    return hexlify(sha256(key.encode()).digest())


class JetStreamIdempotencyStore:
    """:class:`~crosswire._policies.dedup.IdempotencyStore` on the KV bucket ``bucket``.

    :param transport: a :class:`~crosswire.jetstream.JetStreamTransport`; the store uses its
        connection (started on first use if needed).
    :param ttl: how long a ``done`` key is remembered (the bucket's max age), seconds.

    Safe for concurrent use from many tasks of one event loop, and across nodes.
    """

    def __init__(self, transport: Connection, *, bucket: str = "CROSSWIRE_DEDUP", ttl: float = 3600.0) -> None:
        if ttl <= 0:
            raise ConfigurationError("ttl must be > 0")
        if not bucket or not all(c.isalnum() or c in "_-" for c in bucket):
            raise ConfigurationError(f"KV bucket name {bucket!r} must be letters, digits, '_' or '-'")
        self._transport = transport
        self.bucket = bucket
        self.ttl = ttl
        self._kv: KeyValue | None = None
        self._writer: BatchWriter | None = None  # None: a client without the direct paths
        self._nc: NatsClient | None = None  # the connection _kv and _writer were opened on
        self._lock = asyncio.Lock()
        self._owned: dict[str, tuple[bytes, int]] = {}  # key -> (kv key, revision of our running lease)
        self.claims = {"new": 0, "done": 0, "busy": 0}

    def _open(self) -> KeyValue | None:
        """The bucket, if it is open on a connection that is not closed."""
        nc = self._nc
        return self._kv if nc is not None and nc._status != _CLOSED else None

    async def _bucket(self) -> KeyValue:
        """The bucket, opened on the transport's connection (starting the transport on
        first use; opened again on the new connection of a transport started anew).

        :raises TransportError: no bucket; :class:`~crosswire.ClosedError`: the
            transport was closed and not started again.
        """
        async with self._lock:
            if self._open() is None:
                if self._kv is None:
                    await self._transport.start()
                nc = self._transport.connection
                js = self._transport.jetstream
                try:
                    try:
                        kv = await js.key_value(self.bucket)
                    except nats.js.errors.BucketNotFoundError:
                        kv = await js.create_key_value(
                            api.KeyValueConfig(
                                bucket=self.bucket,
                                history=1,
                                ttl=self.ttl,
                                storage=api.StorageType.FILE,
                                replicas=self._transport.replicas,
                                direct=True,
                            )
                        )
                    writer = None
                    if isinstance(nc, Client):
                        writer = BatchWriter(nc, self.bucket, self._transport.publish_timeout, marker=_DONE)
                        await writer.start()
                except Exception as exc:
                    raise TransportError(f"cannot open KV bucket {self.bucket}: {exc}") from exc
                self._kv, self._writer, self._nc = kv, writer, nc
            assert self._kv is not None
            return self._kv

    async def claim(self, key: str, *, lease: float) -> Claim:
        """Take ``key`` for ``lease`` seconds if it is absent or its lease ran out.

        :raises TransportError: the broker did not answer.
        """
        kv = self._open() or await self._bucket()
        k = _kv_key(key)
        value = _LEASE % int((time.time() + lease) * 1000)
        writer = self._writer
        if writer is not None:
            # The common case, a key never seen: a create-if-absent written with this tick's.
            future = writer.claim(k, value)
            try:
                revision = await future
            except asyncio.CancelledError:
                writer.withdraw(future)
                raise
            return self._new(key, k, revision) if revision else await self._claim_taken(kv, key, k, value)
        # A pipelined create-if-absent publish, then the read-and-compare loop.
        batch = await self._transport.publisher.send(
            [(f"$KV.{self.bucket}.{k.decode()}", value, {"Nats-Expected-Last-Subject-Sequence": "0"})],
            f"KV bucket {self.bucket}",
        )
        if batch.error is None:
            return self._new(key, k, batch.seq)
        if batch.error_code not in WRONG_LAST_SEQUENCE:
            raise TransportError(f"dedup claim on {self.bucket} failed: {batch.error}")
        return await self._claim_taken(kv, key, k, value)

    async def _claim_taken(self, kv: KeyValue, key: str, k: bytes, value: bytes) -> Claim:
        """The claim of a key that exists: read it, then compare and set."""
        name = k.decode()
        try:
            for _ in range(16):  # each loop means another client changed the key meanwhile
                try:
                    entry = await kv.get(name)
                except nats.js.errors.KeyNotFoundError:
                    entry = None  # deleted (a released lease): create it again
                if entry is None:
                    try:
                        revision = await kv.create(name, value)
                        return self._new(key, k, revision)
                    except nats.js.errors.KeyWrongLastSequenceError:
                        continue
                current = entry.value or b""
                if current == _DONE:
                    self.claims["done"] += 1
                    return Claim.DONE
                if current.startswith(_RUNNING) and _lease_live(current):
                    self.claims["busy"] += 1
                    return Claim.BUSY
                try:  # an expired lease (its node died): take it over
                    revision = await kv.update(name, value, last=entry.revision)
                    return self._new(key, k, revision)
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue
        except (TimeoutError, nats.errors.Error) as exc:
            raise TransportError(f"dedup claim on {self.bucket} failed: {exc!r}") from exc
        self.claims["busy"] += 1
        return Claim.BUSY

    def _new(self, key: str, k: bytes, revision: int) -> Claim:
        self._owned[key] = (k, revision)
        self.claims["new"] += 1
        return Claim.NEW

    async def complete(self, key: str) -> None:
        """Mark ``key`` done (for the bucket's TTL). The marker is written with this
        tick's others and not waited for: a refusal is logged and counted
        (``done_unconfirmed``), and the key then runs again after its lease.

        :raises TransportError: the broker did not answer (only on a connection that is
            not crosswire's own client: there the marker's pub-ack is awaited).
        """
        self._open() or await self._bucket()
        owned = self._owned.pop(key, None)
        k = owned[0] if owned is not None else _kv_key(key)
        writer = self._writer
        if writer is not None:
            writer.mark(k)
            return
        batch = await self._transport.publisher.send(
            [(f"$KV.{self.bucket}.{k.decode()}", _DONE, None)], f"KV bucket {self.bucket}"
        )
        if batch.error is not None:
            raise TransportError(f"dedup complete on {self.bucket} failed: {batch.error}")

    async def release(self, key: str) -> None:
        """Delete ``key`` so a retry can claim it — only if it is still this store's
        lease (a takeover by another node is left alone).

        :raises TransportError: the broker did not answer.
        """
        kv = self._open() or await self._bucket()
        owned = self._owned.pop(key, None)
        if owned is None:
            return
        k, revision = owned
        try:
            await kv.delete(k.decode(), last=revision)
        except nats.js.errors.APIError as exc:
            if exc.err_code in WRONG_LAST_SEQUENCE:  # no longer ours
                return
            raise TransportError(f"dedup release on {self.bucket} failed: {exc}") from exc
        except (TimeoutError, nats.errors.Error) as exc:
            raise TransportError(f"dedup release on {self.bucket} failed: {exc!r}") from exc

    def statistics(self) -> dict[str, Any]:
        writer = self._writer
        return {
            "bucket": self.bucket,
            "ttl": self.ttl,
            "leases_held": len(self._owned),
            **self.claims,
            "ticks": writer.ticks if writer is not None else 0,
            "done_unconfirmed": writer.unconfirmed if writer is not None else 0,
        }


def _lease_live(value: bytes) -> bool:
    try:
        expires_ms = int(value[len(_RUNNING) :])
    except ValueError:
        return False
    return expires_ms > time.time() * 1000
