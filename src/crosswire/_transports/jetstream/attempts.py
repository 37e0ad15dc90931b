"""What earlier deliveries of a message did, so the attempt budget counts handler runs.

JetStream counts *deliveries* (``num_delivered``). A delivery handed back without
running (a drain, a restart) is a delivery too, so counting deliveries would spend an
event's attempts on restarts. This store keeps, per (consumer, stream sequence), a
small record in the KV bucket ``<stream>_ATTEMPTS``::

    $KV.<stream>_ATTEMPTS.<consumer>.<stream seq>   AttemptLog (MessagePack)
        handbacks   deliveries handed back before their handler started
        attempts    the failed attempts (number, time, error), from any process

It is written only on rare paths — a failed attempt, a hand-back — and read only on
a redelivery (``num_delivered > 1``), so a first delivery costs nothing. The attempt
number of a delivery is then ``num_delivered - handbacks``: every earlier delivery
that was not handed back counts as a run, including one whose node was killed
mid-run (its run cannot be known, so it counts). Writes are compare-and-set on the
key's revision; records are deleted once the message is acked or terminated, and
expire with the bucket's ``max_age`` otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import msgspec
import nats.errors
import nats.js.errors
from nats.js import api
from nats.js.kv import KeyValue

from ..._deadletter import AttemptRecord
from ..._exceptions import TransportError
from .connection import Connection
from .publish import NO_STREAM, WRONG_LAST_SEQUENCE, Message

__all__ = ["AttemptLog", "AttemptStore"]

log = logging.getLogger("crosswire.jetstream")

MAX_RECORDS = 64
"""At most this many failed attempts are kept per message (the latest)."""


class AttemptLog(msgspec.Struct, kw_only=True, omit_defaults=True):
    handbacks: int = 0
    attempts: list[AttemptRecord] = []


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AttemptLog)
EMPTY = AttemptLog()


class AttemptStore:
    """Attempt records of one stream's consumers, in the KV bucket ``<stream>_ATTEMPTS``.

    :param conn: the transport's connection.
    :param ttl: how long a record is kept at most (the bucket's ``max_age``), seconds.
    """

    def __init__(self, conn: Connection, *, ttl: float | None = 7 * 24 * 3600.0) -> None:
        self._conn = conn
        self.bucket = f"{conn.stream}_ATTEMPTS"
        self.ttl = ttl
        self._kv: KeyValue | None = None
        self._lock = asyncio.Lock()
        self.loads = 0
        self.writes = 0

    def _subject(self, consumer: str, seq: int) -> str:
        return f"$KV.{self.bucket}.{consumer}.{seq}"

    async def _bucket(self, *, create: bool) -> KeyValue | None:
        if self._kv is not None:
            return self._kv
        async with self._lock:
            if self._kv is None:
                js = self._conn.jetstream
                try:
                    self._kv = await js.key_value(self.bucket)
                except nats.js.errors.BucketNotFoundError:
                    if not create:
                        return None
                    self._kv = await js.create_key_value(
                        api.KeyValueConfig(
                            bucket=self.bucket,
                            history=1,
                            ttl=self.ttl,
                            storage=api.StorageType.FILE,
                            replicas=self._conn.replicas,
                            direct=True,  # reads are direct gets, outside the JetStream API queue
                        )
                    )
            return self._kv

    async def ensure(self) -> None:
        """Open the bucket, creating it if needed (a consumer is about to start), so
        reads on redeliveries are one direct get each.

        :raises TransportError: the broker refused.
        """
        try:
            await self._bucket(create=True)
        except Exception as exc:
            raise TransportError(f"cannot open or create KV bucket {self.bucket}: {exc}") from exc

    async def load(self, consumer: str, seq: int) -> tuple[AttemptLog, int]:
        """The record of earlier deliveries and its revision (0: none).

        :raises TransportError: the broker did not answer.
        """
        self.loads += 1
        try:
            kv = await self._bucket(create=False)
            if kv is None:
                return EMPTY, 0
            entry = await kv.get(f"{consumer}.{seq}")
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return EMPTY, 0
        except (TimeoutError, nats.errors.Error) as exc:
            raise TransportError(f"cannot read attempt record {consumer}.{seq} in {self.bucket}: {exc!r}") from exc
        try:
            return _decoder.decode(entry.value or b""), entry.revision or 0
        except msgspec.DecodeError:
            log.warning("attempt record %s.%s in %s is not valid; ignored", consumer, seq, self.bucket)
            return EMPTY, entry.revision or 0

    async def write(self, items: Sequence[tuple[str, int, AttemptLog, int]]) -> list[int | None]:
        """Compare-and-set each ``(consumer, seq, record, expected revision)`` (0: the
        key must be absent), pipelined. Returns each item's new revision, or ``None``
        where the key had changed meanwhile (the caller reloads and tries again).

        :raises TransportError: the broker did not answer.
        """
        if not items:
            return []
        self.writes += len(items)
        messages: list[Message] = [
            (
                self._subject(consumer, seq),
                _encoder.encode(_bounded(record)),
                {"Nats-Expected-Last-Subject-Sequence": str(revision)},
            )
            for consumer, seq, record, revision in items
        ]
        what = f"KV bucket {self.bucket}"
        batch = await self._conn.publisher.send(messages, what)
        if NO_STREAM in batch.failed.values():  # first record ever: create the bucket
            try:
                await self._bucket(create=True)
            except Exception as exc:
                raise TransportError(f"cannot create KV bucket {self.bucket}: {exc}") from exc
            batch = await self._conn.publisher.send(messages, what)
        other = [code for code in batch.failed.values() if code not in WRONG_LAST_SEQUENCE]
        if other:
            raise TransportError(f"cannot write attempt records to {self.bucket}: {batch.error}")
        if len(items) == 1:
            return [None] if batch.failed else [batch.seq]
        # Revisions per item are not tracked for batches: a later write of one of these
        # records reloads it first (see JetStreamDelivery).
        return [None if i in batch.failed else -1 for i in range(len(items))]

    async def forget(self, consumer: str, seq: int) -> None:
        """Delete a record (the message is settled for good). Best effort, no ack awaited."""
        try:
            await self._conn.connection.publish(self._subject(consumer, seq), b"", headers={"KV-Operation": "DEL"})
        except Exception as exc:
            log.debug("cannot delete attempt record %s.%s: %r", consumer, seq, exc)


def _bounded(record: AttemptLog) -> AttemptLog:
    if len(record.attempts) <= MAX_RECORDS:
        return record
    return AttemptLog(handbacks=record.handbacks, attempts=record.attempts[-MAX_RECORDS:])
