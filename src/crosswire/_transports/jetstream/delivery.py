"""One JetStream delivery and its settlement: ack, nak (with a delay), term, in-progress.

Settlement uses nats-py's :class:`~nats.aio.msg.Msg` (``ack``, ``nak(delay=)``,
``term``, ``in_progress``); the delivery count and stream sequence come from
``msg.metadata``. A message whose reply subject is not a JetStream ack subject is
not a delivery of a stream message: it becomes a delivery without an event whose
``decode_error`` says so, which the node dead-letters as ``invalid_argument``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

import nats.errors
from nats.aio.msg import Msg

from ..._envelope import Event, decode_event
from ..._exceptions import EnvelopeDecodeError, TransportError

__all__ = ["JetStreamDelivery", "SettleListener"]


class SettleListener(Protocol):
    """Told when a delivery is settled (the subscription that received it)."""

    @property
    def consumer(self) -> str: ...

    def delivery_settled(self, delivery: JetStreamDelivery) -> None: ...


class JetStreamDelivery:
    """One delivery of one message to one subscription.

    The first settlement stands; later settlements are no-ops. JetStream itself
    applies an ack by stream sequence, whichever delivery sent it; so once a newer
    delivery of the same message reached this subscription (this one's lease ran
    out), this one is *superseded*: its settlements are dropped and the newer
    delivery's outcome decides. Not thread-safe.
    """

    __slots__ = (
        "_decode_error",
        "_event",
        "_listener",
        "_msg",
        "_settled",
        "_superseded",
        "attempt",
        "num_delivered",
        "stream_sequence",
    )

    def __init__(self, listener: SettleListener, msg: Msg) -> None:
        self._listener = listener
        self._msg = msg
        self._settled = False
        self._superseded = False
        self._event: Event[Any] | None = None
        self._decode_error: str | None = None
        try:
            metadata = msg.metadata
        except (nats.errors.Error, ValueError, IndexError) as exc:
            # Not a stream message's delivery: nothing says which attempt it is.
            self.num_delivered = 1
            self.stream_sequence = 0
            self._decode_error = (
                f"reply subject {msg.reply!r} is not a JetStream ack subject "
                f"($JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>...): {type(exc).__name__}"
            )
        else:
            self.num_delivered = metadata.num_delivered
            self.stream_sequence = metadata.sequence.stream
            try:
                self._event = decode_event(msg.data)
            except EnvelopeDecodeError as exc:
                self._decode_error = str(exc)
        self.attempt = self.num_delivered

    @property
    def event(self) -> Event[Any] | None:
        return self._event

    @property
    def raw(self) -> bytes:
        return self._msg.data

    @property
    def subject(self) -> str:
        """The subject the message was published on."""
        return self._msg.subject

    @property
    def headers(self) -> dict[str, str] | None:
        return self._msg.headers

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

    def supersede(self) -> None:
        self._superseded = True

    async def ack(self) -> None:
        if self._begin_settle():
            await self._call(self._msg.ack())

    async def retry(self, after: float) -> None:
        if self._begin_settle():
            await self._call(self._msg.nak(delay=after if after > 0 else None))

    async def terminate(self) -> None:
        if self._begin_settle():
            await self._call(self._msg.term())

    async def in_progress(self) -> None:
        if self._settled or self._superseded:
            return
        await self._call(self._msg.in_progress())

    def _begin_settle(self) -> bool:
        """Mark settled; whether a settlement should be sent to the broker."""
        if self._settled:
            return False
        self._settled = True
        self._listener.delivery_settled(self)
        return not self._superseded

    async def _call(self, settle: Awaitable[None]) -> None:
        try:
            await settle
        except Exception as exc:
            raise TransportError(f"cannot settle delivery on {self._listener.consumer}: {exc!r}") from exc

    def __repr__(self) -> str:
        kind = self._event.type if self._event is not None else "<undecodable>"
        return f"<JetStreamDelivery {kind} attempt={self.attempt} settled={self._settled}>"
