"""Dead letters in a JetStream stream, shared by every node of a cluster.

Layout (``stream="CROSSWIRE"``, ``subject_prefix="cw"``)::

    stream CROSSWIRE_DLQ   subjects cwdlq.>   file storage, max_msgs_per_subject = 1
      cwdlq.<binding-token>.<letter-token>   one message per dead letter: the
                                             DeadLetter struct as MessagePack

Tokens are hashes of the binding name and of the letter id (subjects allow few
characters). One message per subject means putting a letter again (a replay record
added, the same event dead-lettered again) replaces it. ``put`` returns once
JetStream stored the letter, so the node may then terminate the delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.js import api

from ..._deadletter import DeadLetter
from ..._exceptions import DecodeError, TransportError
from ..._replay import TRUNCATED
from .connection import Connection
from .streams import attach_stream

__all__ = ["JetStreamDeadLetterStore"]

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[DeadLetter] = msgspec.msgpack.Decoder(DeadLetter)
_Errors = (nats.errors.Error, asyncio.TimeoutError)
_HEADROOM = 512  # the publish's own headers (Nats-Expected-Stream) and framing
_BATCH = 256  # letters per round trip when listing


def _token(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:40]


class JetStreamDeadLetterStore:
    """:class:`~crosswire._deadletter.DeadLetterStore` on the stream ``<stream>_DLQ``.

    :param transport: a :class:`~crosswire.jetstream.JetStreamTransport`; the store uses its
        connection, stream name and subject prefix (started on first use if needed).
    :param max_age: how long letters are kept (seconds; ``None``: until purged).

    Safe for concurrent use from many tasks of one event loop, and across nodes.
    """

    def __init__(self, transport: Connection, *, max_age: float | None = None) -> None:
        self._transport = transport
        self.stream = f"{transport.stream}_DLQ"
        self.prefix = f"{transport.subject_prefix}dlq"
        self.max_age = max_age
        self._ready = False
        self._lock = asyncio.Lock()

    def subject(self, binding: str, letter_id: str) -> str:
        return f"{self.prefix}.{_token(binding)}.{_token(letter_id)}"

    async def _js(self) -> Any:
        if not self._ready:
            async with self._lock:
                if not self._ready:
                    await self._transport.start()
                    info = await attach_stream(
                        self._transport.jetstream,
                        api.StreamConfig(
                            name=self.stream,
                            subjects=[f"{self.prefix}.>"],
                            storage=api.StorageType.FILE,
                            retention=api.RetentionPolicy.LIMITS,
                            max_msgs_per_subject=1,
                            max_age=self.max_age,
                            num_replicas=self._transport.replicas,
                        ),
                        create=not self._transport.read_only,
                    )
                    if info is None:
                        raise _Missing(self.stream)
                    self._ready = True
        return self._transport.jetstream

    async def put(self, letter: DeadLetter) -> None:
        """Store (or replace) ``letter``; returns once JetStream stored it.

        :raises TransportError: not stored.
        """
        js = await self._js()
        body = _fit(letter, self._transport.connection.max_payload - _HEADROOM)
        try:
            await js.publish(self.subject(letter.binding, letter.id), body, stream=self.stream)
        except _Errors as exc:
            raise TransportError(f"cannot store dead letter {letter.id!r} in {self.stream}: {exc!r}") from exc

    async def get(self, letter_id: str) -> DeadLetter | None:
        """The letter with ``letter_id``, or ``None``.

        :raises TransportError: the broker did not answer.
        :raises DecodeError: the stored record is not a dead letter.
        """
        found = await self._find(letter_id)
        return found[1] if found is not None else None

    async def _find(self, letter_id: str) -> tuple[int, DeadLetter] | None:
        try:
            js = await self._js()
        except _Missing:
            return None
        try:
            msg = await js.get_msg(self.stream, seq=1, next=True, subject=f"{self.prefix}.*.{_token(letter_id)}")
        except nats.js.errors.NotFoundError:
            return None
        except _Errors as exc:
            raise TransportError(f"cannot read dead letter {letter_id!r}: {exc!r}") from exc
        return msg.seq, _decode(msg.data, msg.seq)

    async def list(self, *, binding: str | None = None, type: str | None = None, limit: int = 1000) -> list[DeadLetter]:
        """Dead letters, oldest (``dead_at``) first, filtered by binding and event type:
        the ``limit`` oldest of those stored when the call began.

        The stream is read in batches of pipelined requests (a few round trips for
        thousands of letters; nothing is created); only ``limit`` letters are kept
        meanwhile.

        :raises TransportError: the broker did not answer.
        """
        if limit < 1:
            return []
        try:
            js = await self._js()
        except _Missing:
            return []  # read-only, and no letter was ever stored
        within = f"{self.prefix}.{_token(binding)}." if binding is not None else f"{self.prefix}."
        # the `limit` oldest so far, newest on top: (-dead_at, -seq, letter)
        oldest: list[tuple[float, int, DeadLetter]] = []
        async for seq, letter in self._read(js, within):
            if (binding is None or letter.binding == binding) and (type is None or letter.event_type == type):
                item = (-letter.dead_at, -seq, letter)
                if len(oldest) < limit:
                    heapq.heappush(oldest, item)
                elif item > oldest[0]:
                    heapq.heapreplace(oldest, item)
        # Stream order is put order; a re-put moves a letter to the end, so sort.
        return [letter for _, _, letter in sorted(oldest, reverse=True)]

    async def _read(self, js: Any, within: str) -> AsyncIterator[tuple[int, DeadLetter]]:
        """``(stream sequence, letter)`` of every letter whose subject starts with
        ``within``, stored before the call, in stream order: the sequences are read ``_BATCH`` at a time, their
        requests pipelined. Reads only (no consumer: ``read_only`` holds); a sequence
        whose letter was replaced or deleted is skipped."""
        try:
            state = (await js.stream_info(self.stream)).state
        except _Errors as exc:
            raise TransportError(f"cannot list dead letters in {self.stream}: {exc!r}") from exc
        if not state.messages:
            return
        for first in range(state.first_seq, state.last_seq + 1, _BATCH):
            seqs = range(first, min(first + _BATCH, state.last_seq + 1))
            for msg in await asyncio.gather(*(self._get(js, seq) for seq in seqs)):
                if msg is not None and msg.subject.startswith(within):
                    yield msg.seq, _decode(msg.data, msg.seq)

    async def _get(self, js: Any, seq: int) -> Any:
        """The message at ``seq``, or ``None`` if there is none (replaced, deleted)."""
        try:
            return await js.get_msg(self.stream, seq=seq)
        except nats.js.errors.NotFoundError:
            return None
        except _Errors as exc:
            raise TransportError(f"cannot list dead letters in {self.stream}: {exc!r}") from exc

    async def purge(self, letter_ids: Sequence[str] | None = None) -> int:
        """Delete the given letters (all when ``None``); returns how many were deleted.

        :raises TransportError: the broker did not answer.
        """
        js = await self._js()
        try:
            if letter_ids is None:
                reply = await self._transport.connection.request(
                    f"$JS.API.STREAM.PURGE.{self.stream}", b"{}", timeout=self._transport.publish_timeout
                )
                answer = msgspec.json.decode(reply.data)
                if "error" in answer:
                    raise TransportError(f"cannot purge {self.stream}: {answer['error'].get('description')}")
                return int(answer.get("purged", 0))
            deleted = 0
            for letter_id in letter_ids:
                found = await self._find(letter_id)
                if found is not None:
                    try:
                        await js.delete_msg(self.stream, found[0])
                        deleted += 1
                    except nats.js.errors.NotFoundError:
                        pass  # deleted concurrently
            return deleted
        except _Errors as exc:
            raise TransportError(f"cannot purge dead letters in {self.stream}: {exc!r}") from exc


class _Missing(TransportError):
    def __init__(self, stream: str) -> None:
        super().__init__(f"dead-letter stream {stream} does not exist (read-only: nothing was created)")


def _fit(letter: DeadLetter, limit: int) -> bytes:
    """The letter's bytes, cut to at most ``limit``: a poison event near the server's
    max_payload must still be dead-lettered, not redelivered forever. Cut in order:
    the event's data (or the raw bytes), then all but the first and last attempts.
    What was cut is said in ``error.details["truncated"]`` (and the event's
    ``cwtruncated`` extension holds its original data size)."""
    body = _encoder.encode(letter)
    if len(body) <= limit:
        return body
    notes: list[str] = []
    over = len(body) - limit + 64
    event, raw = letter.event, letter.raw
    if event is not None and event.data:
        kept = max(0, len(event.data) - over)
        notes.append(f"event data: kept {kept} of {len(event.data)} bytes")
        ext = {**event.extensions, TRUNCATED: len(event.data)}
        event = msgspec.structs.replace(event, data=event.data[:kept], extensions=ext)
    elif raw:
        kept = max(0, len(raw) - over)
        notes.append(f"raw bytes: kept {kept} of {len(raw)}")
        raw = raw[:kept]
    attempts = letter.attempts
    trial = msgspec.structs.replace(letter, event=event, raw=raw)
    if len(_encoder.encode(trial)) > limit and len(attempts) > 2:
        notes.append(f"attempts: kept the first and last of {len(attempts)}")
        attempts = [attempts[0], attempts[-1]]
    error = letter.error
    if len(error.details) < 32:  # the envelope's limit on details
        details = {**error.details, "truncated": "; ".join(notes) or "nothing could be cut"}
        error = msgspec.structs.replace(error, details=details)
    trial = msgspec.structs.replace(letter, event=event, raw=raw, attempts=attempts, error=error)
    return _encoder.encode(trial)


def _decode(data: bytes | None, seq: int) -> DeadLetter:
    try:
        return _decoder.decode(data or b"")
    except msgspec.DecodeError as exc:
        raise DecodeError(f"dead letter at sequence {seq} is not a valid record: {exc}") from exc
