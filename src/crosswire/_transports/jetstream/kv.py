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
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import api
from nats.js.kv import KeyValue

from ..._exceptions import ConfigurationError, TransportError
from ..._policies.dedup import Claim
from .connection import Connection

__all__ = ["JetStreamIdempotencyStore"]

_DONE = b"done"
_WRONG_LAST_SEQUENCE = (10071, 10164)  # JetStream error codes: expected last sequence differs
_RUNNING = b"running "


def _kv_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


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
        self._lock = asyncio.Lock()
        self._owned: dict[str, int] = {}  # kv key -> revision of our running lease
        self.claims = {"new": 0, "done": 0, "busy": 0}

    async def _bucket(self) -> KeyValue:
        if self._kv is not None:
            return self._kv
        async with self._lock:
            if self._kv is None:
                await self._transport.start()
                js = self._transport.jetstream
                try:
                    try:
                        self._kv = await js.key_value(self.bucket)
                    except nats.js.errors.BucketNotFoundError:
                        self._kv = await js.create_key_value(
                            api.KeyValueConfig(
                                bucket=self.bucket,
                                history=1,
                                ttl=self.ttl,
                                storage=api.StorageType.FILE,
                                replicas=self._transport.replicas,
                                direct=True,
                            )
                        )
                except Exception as exc:
                    raise TransportError(f"cannot open KV bucket {self.bucket}: {exc}") from exc
            return self._kv

    async def claim(self, key: str, *, lease: float) -> Claim:
        """Take ``key`` for ``lease`` seconds if it is absent or its lease ran out.

        :raises TransportError: the broker did not answer.
        """
        kv = await self._bucket()
        k = _kv_key(key)
        value = _RUNNING + str(int((time.time() + lease) * 1000)).encode()
        # The common case, a key never seen: one pipelined create-if-absent publish.
        batch = await self._transport.publisher.send(
            [(f"$KV.{self.bucket}.{k}", value, {"Nats-Expected-Last-Subject-Sequence": "0"})],
            f"KV bucket {self.bucket}",
        )
        if batch.error is None:
            return self._new(k, batch.seq)
        if batch.error_code not in _WRONG_LAST_SEQUENCE:
            raise TransportError(f"dedup claim on {self.bucket} failed: {batch.error}")
        try:
            for _ in range(16):  # each loop means another client changed the key meanwhile
                try:
                    revision = await kv.create(k, value)
                    return self._new(k, revision)
                except nats.js.errors.KeyWrongLastSequenceError:
                    pass
                try:
                    entry = await kv.get(k)
                except nats.js.errors.KeyNotFoundError:
                    continue  # deleted since: create again
                current = entry.value or b""
                if current == _DONE:
                    self.claims["done"] += 1
                    return Claim.DONE
                if current.startswith(_RUNNING) and _lease_live(current):
                    self.claims["busy"] += 1
                    return Claim.BUSY
                try:  # an expired lease (its node died): take it over
                    revision = await kv.update(k, value, last=entry.revision)
                    return self._new(k, revision)
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue
        except (TimeoutError, nats.errors.Error) as exc:
            raise TransportError(f"dedup claim on {self.bucket} failed: {exc!r}") from exc
        self.claims["busy"] += 1
        return Claim.BUSY

    def _new(self, k: str, revision: int) -> Claim:
        self._owned[k] = revision
        self.claims["new"] += 1
        return Claim.NEW

    async def complete(self, key: str) -> None:
        """Mark ``key`` done (for the bucket's TTL).

        :raises TransportError: the broker did not answer.
        """
        await self._bucket()
        k = _kv_key(key)
        self._owned.pop(k, None)
        batch = await self._transport.publisher.send(
            [(f"$KV.{self.bucket}.{k}", _DONE, None)], f"KV bucket {self.bucket}"
        )
        if batch.error is not None:
            raise TransportError(f"dedup complete on {self.bucket} failed: {batch.error}")

    async def release(self, key: str) -> None:
        """Delete ``key`` so a retry can claim it — only if it is still this store's
        lease (a takeover by another node is left alone).

        :raises TransportError: the broker did not answer.
        """
        kv = await self._bucket()
        k = _kv_key(key)
        revision = self._owned.pop(k, None)
        if revision is None:
            return
        try:
            await kv.delete(k, last=revision)
        except nats.js.errors.APIError as exc:
            if exc.err_code in _WRONG_LAST_SEQUENCE:  # no longer ours
                return
            raise TransportError(f"dedup release on {self.bucket} failed: {exc}") from exc
        except (TimeoutError, nats.errors.Error) as exc:
            raise TransportError(f"dedup release on {self.bucket} failed: {exc!r}") from exc

    def statistics(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "ttl": self.ttl, "leases_held": len(self._owned), **self.claims}


def _lease_live(value: bytes) -> bool:
    try:
        expires_ms = int(value[len(_RUNNING) :])
    except ValueError:
        return False
    return expires_ms > time.time() * 1000
