"""One JetStream delivery and its settlement: ack, nak (with a delay), term, in-progress.

A delivery is built from the message as it came off the wire (subject, reply subject,
body, headers), without a nats-py ``Msg``; settlements (``+ACK``, ``-NAK`` with a
delay, ``+TERM``, ``+WPI``) are written to the reply subject without a coroutine each
(:meth:`.headers.Client.write`), and the delivery count and stream sequence are read
from the reply subject (``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>...``,
or the form with a domain). A message whose reply subject is not a JetStream ack subject is
not a delivery of a stream message: it becomes a delivery without an event whose
``decode_error`` says so. An event is read as a CloudEvent (binary or structured
content mode, or the previous crosswire format: :func:`crosswire._binary.from_binary`),
so events any CloudEvents SDK published reach their handlers, which the node dead-letters as ``invalid_argument``. So is
an event whose subject is not ``<prefix>.<its type>``, or whose ``ce-type`` /
``ce-id`` / ``Nats-Msg-Id`` headers contradict its envelope: it is never handed to
the handler of the type its subject names.

``attempt`` counts handler runs, not deliveries: see :mod:`.attempts`. A delivery
whose handler never started is returned with :meth:`JetStreamDelivery.hand_back`
(or :func:`hand_back_all`), which does not spend an attempt.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

from ..._binary import from_binary, unescape
from ..._deadletter import AttemptRecord
from ..._envelope import Event, encode_event
from ..._exceptions import EnvelopeDecodeError, TransportError
from .attempts import EMPTY, AttemptLog, AttemptStore
from .connection import Confirmer
from .headers import parse_header_block

__all__ = ["JetStreamDelivery", "SettleListener", "hand_back_all"]

log = logging.getLogger("crosswire.jetstream")

_CAS_TRIES = 4
_ACK, _NAK, _TERM, _WPI = b"+ACK", b"-NAK", b"+TERM", b"+WPI"


def ack_metadata(reply: bytes) -> tuple[int, int]:
    """``(delivery count, stream sequence)`` from a JetStream ack subject: the form
    without a domain (``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>
    .<pending>``) or with one (``$JS.ACK.<domain>.<account>.<stream>.<consumer>
    .<delivered>...``, 11 tokens or more).

    :raises ValueError: not such a subject.
    """
    return _metadata(reply.split(b"."))


def _metadata(tokens: list[bytes]) -> tuple[int, int]:
    """:func:`ack_metadata` of the subject's tokens."""
    count = len(tokens)
    if count < 2 or tokens[0] != b"$JS" or tokens[1] != b"ACK":
        raise ValueError("not a $JS.ACK subject")
    if count == 9:
        delivered, sequence = tokens[4], tokens[5]
    elif count >= 11:
        delivered, sequence = tokens[6], tokens[7]
    else:
        raise ValueError(f"{count} tokens")
    if not (delivered.isdigit() and sequence.isdigit()):
        raise ValueError("the delivery count and stream sequence must be decimal")
    return int(delivered), int(sequence)


class SettleListener(Protocol):
    """Told when a delivery is settled (the subscription that received it)."""

    @property
    def consumer(self) -> str: ...

    @property
    def confirmer(self) -> Confirmer | None:
        """Confirms that acks reached the server (``None``: acks are not confirmed)."""

    def delivery_settled(self, delivery: JetStreamDelivery, finished: str | None = None) -> None:
        """It was settled; ``finished``: acked (``"ack"``) or terminated (``"term"``) for
        good (not superseded), else ``None``."""

    def write(self, reply: bytes, payload: bytes) -> None:
        """Send a settlement (``payload``) to a delivery's reply subject."""


class JetStreamDelivery:
    """One delivery of one message to one subscription.

    The first settlement stands; later settlements are no-ops. JetStream itself
    applies an ack by stream sequence, whichever delivery sent it; so once a newer
    delivery of the same message reached this subscription (this one's lease ran
    out), this one is *superseded*: its settlements are dropped and the newer
    delivery's outcome decides. Not thread-safe.
    """

    __slots__ = (
        "_data",
        "_decode_error",
        "_event",
        "_headers",
        "_listener",
        "_log",
        "_reply",
        "_revision",
        "_settled",
        "_store",
        "_subject",
        "_superseded",
        "attempt",
        "num_delivered",
        "queued_at",
        "size",
        "stream_sequence",
    )

    def __init__(
        self,
        listener: SettleListener,
        subject: str,
        reply: bytes,
        data: bytes,
        headers: dict[str, str] | bytes | None,
        store: AttemptStore | None = None,
        prefix: str | None = None,
        read: tuple[Event[Any], str | None] | None = None,
    ) -> None:
        """``headers``: a dict, or the header block :func:`.frames.read_block` read as
        ``read`` (then parsed only when :attr:`headers` is asked for)."""
        self._listener = listener
        self._subject = subject
        self._reply = reply
        self._data = data
        self._headers = headers
        self.size = len(data)
        """Bytes of the body: what the subscription's byte budget counts."""
        self._store = store
        self._settled = self._superseded = False
        self._event: Event[Any] | None = None
        self._decode_error: str | None = None
        self._log = EMPTY
        self._revision: int | None = 0  # of the attempt record; 0: none; None: unknown
        self.queued_at = 0.0
        """When it was queued in its subscription, or its lease last renewed there."""
        tokens = reply.split(b".")
        usual = len(tokens) == 9 and tokens[4] == b"1" and tokens[0] == b"$JS" and tokens[1] == b"ACK"
        if usual and tokens[5].isdigit():  # a first delivery (the usual subject)
            self.num_delivered = self.attempt = 1
            self.stream_sequence = int(tokens[5])
        else:
            try:
                self.num_delivered, self.stream_sequence = _metadata(tokens)
            except ValueError as exc:
                # Not a stream message's delivery: nothing says which attempt it is.
                self.num_delivered = self.attempt = 1
                self.stream_sequence = 0
                self._store = None
                self._decode_error = (
                    f"reply subject {reply.decode(errors='replace')!r} is not a JetStream ack subject "
                    f"($JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>...): {exc}"
                )
                return
            self.attempt = self.num_delivered
            """Handler runs so far + 1 (resolved by :meth:`load` on a redelivery)."""
            if self.num_delivered > 1 and store is not None:
                self._revision = None  # earlier deliveries may have left a record: load()
        if read is not None:
            event, msgid = read
            if (prefix is None or subject == prefix + event.type) and (msgid is None or msgid == event.id):
                self._event = event
            else:
                self._decode_error = _contradiction(subject, None, event, prefix) or _contradicts_id(msgid, event)
            return
        try:
            event = from_binary(self.headers, data)
        except EnvelopeDecodeError as exc:
            self._decode_error = str(exc)
        else:
            self._decode_error = _contradiction(subject, self.headers, event, prefix)
            if self._decode_error is None:
                self._event = event

    @property
    def event(self) -> Event[Any] | None:
        return self._event

    @property
    def raw(self) -> bytes:
        """The event as its MessagePack envelope; for a message that did not decode, the
        body as it travelled (its headers are in :attr:`headers`)."""
        if self._event is not None:
            return encode_event(self._event)
        return self._data

    @property
    def subject(self) -> str:
        """The subject the message was published on."""
        return self._subject

    @property
    def headers(self) -> dict[str, str] | None:
        headers = self._headers
        if isinstance(headers, bytes):
            headers = self._headers = parse_header_block(headers) or None
        return headers

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

    @property
    def handbacks(self) -> int:
        """Earlier deliveries handed back before their handler started."""
        return self._log.handbacks

    def supersede(self) -> None:
        self._superseded = True

    # -- attempt records ----------------------------------------------------------------

    async def load(self) -> None:
        """Read what earlier deliveries left (only on a redelivery) and set ``attempt``.

        If the record cannot be read, every earlier delivery counts as a run.
        """
        if self._revision is not None or self._store is None:
            return
        try:
            self._log, self._revision = await self._store.load(self._listener.consumer, self.stream_sequence)
        except TransportError as exc:
            log.warning("%s; delivery %d counts every earlier delivery as a run", exc, self.num_delivered)
            return
        self.attempt = max(1, self.num_delivered - self._log.handbacks)

    async def history(self) -> list[AttemptRecord]:
        """The failed attempts of earlier deliveries, by this or earlier processes."""
        return list(self._log.attempts)

    async def record_failure(self, record: AttemptRecord) -> None:
        """Keep a failed attempt, so a later delivery (in any process) sees it in
        :meth:`history`. Call it before :meth:`retry`. Best effort: a record that
        cannot be written is logged, and the attempt still counts."""
        if self._store is None or self._settled or self._superseded:
            return
        try:
            await self._update(lambda base: AttemptLog(handbacks=base.handbacks, attempts=[*base.attempts, record]))
        except TransportError as exc:
            log.warning("attempt %d of %s not recorded: %s", record.number, self._describe(), exc)

    async def _update(self, change: Any) -> None:
        assert self._store is not None
        consumer, seq = self._listener.consumer, self.stream_sequence
        for _ in range(_CAS_TRIES):
            if self._revision is None:
                await self._reload()
            new = change(self._log)
            [revision] = await self._store.write([(consumer, seq, new, self._revision or 0)])
            if revision is not None:
                self._log, self._revision = new, revision
                return
            self._revision = None  # changed meanwhile: reload, apply again
        raise TransportError(f"attempt record {consumer}.{seq} kept changing")

    async def _reload(self) -> None:
        assert self._store is not None
        log_, revision = await self._store.load(self._listener.consumer, self.stream_sequence)
        # On a first delivery a record can only be stale (a consumer of the same name
        # that was deleted and created again): start from nothing, overwrite it.
        self._log = log_ if self.num_delivered > 1 else EMPTY
        self._revision = revision

    # -- settlement -----------------------------------------------------------------------

    async def ack(self) -> None:
        """Done. With confirmed acks (the default), this waits when too many acks of the
        connection are not yet confirmed by the server (see ``Confirmer``)."""
        if (rest := self._finish("ack", _ACK)) is not None:
            await rest

    async def retry(self, after: float) -> None:
        if self._begin_settle():
            delay = int(after * 10**9) if after > 0 else 0
            self._write(_NAK + b" " + json.dumps({"delay": delay}).encode() if delay else _NAK)

    async def terminate(self) -> None:
        if (rest := self._finish("term", _TERM)) is not None:
            await rest

    def _finish(self, how: str, payload: bytes) -> Coroutine[Any, Any, None] | None:
        """Ack or terminate for good (without a coroutine: every event's path); what is
        left to await, if anything: a confirmation, dropping the attempt record."""
        if not self._begin_settle(how):
            return None
        listener = self._listener
        try:
            listener.write(self._reply, payload)
        except Exception as exc:
            raise TransportError(f"cannot settle delivery on {listener.consumer}: {exc!r}") from exc
        confirmer = listener.confirmer
        wait = confirmer is not None and confirmer.acked()  # too many unconfirmed: wait
        forget = self._store is not None and self._revision != 0
        return self._finished(confirmer if wait else None, forget) if wait or forget else None

    async def _finished(self, confirmer: Confirmer | None, forget: bool) -> None:
        if confirmer is not None:
            await self._confirmed(confirmer)
        if forget and self._store is not None:
            await self._store.forget(self._listener.consumer, self.stream_sequence)

    async def hand_back(self) -> None:
        """Return a delivery whose handler never started, at once, without spending an
        attempt: the hand-back is recorded before the broker gets the message back."""
        await hand_back_all([self])

    async def in_progress(self) -> None:
        if self._settled or self._superseded:
            return
        self._write(_WPI)

    def _begin_settle(self, finished: str | None = None) -> bool:
        """Mark settled (``finished``: acked or terminated for good); whether a
        settlement should be sent to the broker."""
        if self._settled:
            return False
        self._settled = True
        if self._superseded:
            self._listener.delivery_settled(self)
            return False
        self._listener.delivery_settled(self, finished)
        return True

    async def _confirmed(self, confirmer: Confirmer) -> None:
        try:
            await confirmer.wait()
        except Exception as exc:
            raise TransportError(f"ack on {self._listener.consumer} not confirmed: {exc!r}") from exc

    def _write(self, payload: bytes) -> None:
        try:
            self._listener.write(self._reply, payload)
        except Exception as exc:
            raise TransportError(f"cannot settle delivery on {self._listener.consumer}: {exc!r}") from exc

    def _describe(self) -> str:
        return f"message {self.stream_sequence} on consumer {self._listener.consumer}"

    def __repr__(self) -> str:
        kind = self._event.type if self._event is not None else "<undecodable>"
        return f"<JetStreamDelivery {kind} attempt={self.attempt} settled={self._settled}>"


def _contradiction(subject: str, headers: dict[str, str] | None, event: Event[Any], prefix: str | None) -> str | None:
    """Why the message's subject or headers contradict its envelope, or ``None``."""
    if prefix is not None and subject != prefix + event.type:
        return (
            f"the envelope contradicts its subject: published on {subject!r}, "
            f"but the event's type is {event.type!r} (expected subject {prefix + event.type!r})"
        )
    if headers:
        for name, value in (("ce-type", event.type), ("ce-id", event.id), ("Nats-Msg-Id", event.id)):
            header = headers.get(name)
            if header is not None and (unescape(header) if name.startswith("ce-") else header) != value:
                return f"the envelope contradicts its headers: header {name} is {header!r}, the envelope says {value!r}"
    return None


def _contradicts_id(msgid: str | None, event: Event[Any]) -> str | None:
    if msgid is None or msgid == event.id:
        return None
    return f"the envelope contradicts its headers: header Nats-Msg-Id is {msgid!r}, the envelope says {event.id!r}"


async def hand_back_all(deliveries: Sequence[JetStreamDelivery]) -> None:
    """Hand back deliveries whose handlers never started: record one more hand-back
    for each (pipelined), then nak them without delay. Settled ones are skipped.

    A hand-back that cannot be recorded is still naked (it then counts as a run).
    """
    todo = [d for d in deliveries if d._begin_settle()]
    if not todo:
        return
    recorded = [d for d in todo if d._store is not None and not d._superseded]
    unknown = [d for d in recorded if d._revision is None]
    if unknown:  # redeliveries whose record was not read yet
        await asyncio.gather(*(d._reload() for d in unknown), return_exceptions=True)
    known = [d for d in recorded if d._revision is not None]
    store = known[0]._store if known else None
    again: list[JetStreamDelivery] = [d for d in recorded if d._revision is None]
    if store is not None:
        items = [(d._listener.consumer, d.stream_sequence, _one_more(d._log), d._revision or 0) for d in known]
        try:
            results = await store.write(items)
        except TransportError as exc:
            log.warning("%d hand-backs not recorded (they count as runs): %s", len(items), exc)
            results = [0] * len(items)
        again += [d for d, r in zip(known, results, strict=True) if r is None]
    for d in again:  # the record changed meanwhile, or was not loaded yet: one by one
        try:
            await d._update(_one_more)
        except TransportError as exc:
            log.warning("hand-back of %s not recorded (it counts as a run): %s", d._describe(), exc)
    first_error: TransportError | None = None
    for d in todo:
        if d._superseded:
            continue
        try:
            d._write(_NAK)
        except TransportError as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise first_error


def _one_more(base: AttemptLog) -> AttemptLog:
    return AttemptLog(handbacks=base.handbacks + 1, attempts=base.attempts)
