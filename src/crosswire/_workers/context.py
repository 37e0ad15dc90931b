"""What a Python worker's handler knows about its delivery (:class:`Context`)."""

from __future__ import annotations

from typing import Any

from .._envelope import Event, follow_up, new_event_id

__all__ = ["Context"]


class Context:
    """What a handler knows about its delivery, and where it emits follow-up events."""

    def __init__(self, worker: str, delivery_id: int, event: Event[Any], deadline_ms: int) -> None:
        self.worker = worker
        self.delivery_id = delivery_id
        self.event = event
        #: Unix seconds the attempt must finish by, or None.
        self.deadline: float | None = deadline_ms / 1000 if deadline_ms else None
        self.emitted: list[Event[Any]] = []

    @property
    def attempt(self) -> int:
        return self.event.attempt

    @property
    def traceparent(self) -> str | None:
        return self.event.traceparent

    @property
    def tracestate(self) -> str | None:
        return self.event.tracestate

    def emit(
        self,
        event: Event[Any] | str,
        data: bytes | None = None,
        *,
        datacontenttype: str | None = None,
        subject: str | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> Event[Any]:
        """Emit a follow-up event, submitted by the node once this attempt is acked.

        Pass an event type (and ``data``) or a whole :class:`crosswire.Event`. Fields the
        handler left unset are filled per spec/conformance-worker.md: a fresh ``id``,
        ``source`` = the worker name (also replacing ``Event.new``'s default
        ``"crosswire"``), ``correlationid`` = the incoming one or its ``id``,
        ``causationid`` = the incoming ``id``, the incoming ``traceparent``/``tracestate``
        and ``partitionkey``, ``time`` = now.
        """
        incoming = self.event
        if isinstance(event, str):
            out: Event[Any] = Event(
                specversion="1.0",
                id=new_event_id(),
                source=self.worker,
                type=event,
                subject=subject,
                datacontenttype=datacontenttype,
                data=data,
                extensions=extensions or {},
            )
        else:
            out = event
        out = follow_up(incoming, out, self.worker)
        self.emitted.append(out)
        return out
