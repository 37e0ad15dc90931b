"""Recordings: the events of a stream (or of a running node) with their timing, as
JSON lines, for a scenario to replay at a chosen speed with the same types, keys and payloads.

Line 1 is a header ``{"recording": {...}}``; each further line is a
:class:`~crosswire.harness.traffic.Recorded` — ``t`` (seconds from the first event),
``type``, ``key``, ``id``, ``datacontenttype`` and the payload (``data`` as JSON when that
re-encodes to the same bytes, else ``data_base64``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import time
from pathlib import Path
from typing import IO, Any

import msgspec

from .._envelope import Event, decode_event
from .._exceptions import EnvelopeDecodeError
from .._types import Attempt, Handler, Outcome
from .traffic import Recorded

__all__ = ["RecordingMiddleware", "record_stream", "recorded_line"]

_enc = msgspec.json.Encoder()


def recorded_line(event: Event[Any], t: float) -> bytes:
    """One recording line for ``event`` at offset ``t``."""
    ct = event.datacontenttype
    rec = Recorded(t=round(t, 6), type=event.type, key=event.partitionkey, id=event.id, datacontenttype=ct)
    if event.data is not None:
        if ct is not None and "json" in ct:
            try:
                value = msgspec.json.decode(event.data)
            except msgspec.DecodeError:
                value = None
            if value is not None and msgspec.json.encode(value) == event.data:
                rec.data = value  # readable, and re-encodes to the same bytes
            else:
                rec.data_base64 = base64.b64encode(event.data).decode()
        else:
            rec.data_base64 = base64.b64encode(event.data).decode()
    return _enc.encode(rec) + b"\n"


def _header(**info: Any) -> bytes:
    return _enc.encode({"recording": info}) + b"\n"


class RecordingMiddleware:
    """Record the events a running node handles (first attempts, per binding) into
    ``path``: put it in the app's middleware (``App(middleware=[RecordingMiddleware(p)])``)."""

    def __init__(self, path: str | os.PathLike[str], *, bindings: set[str] | None = None) -> None:
        self.path = Path(path)
        self.bindings = bindings
        self._file: IO[bytes] | None = None
        self._t0: float | None = None
        self._seen: set[str] = set()

    def __call__(self, inner: Handler) -> Handler:
        async def handle(attempt: Attempt) -> Outcome:
            event = attempt.event
            wanted = self.bindings is None or attempt.binding in self.bindings
            if attempt.number == 1 and wanted and event.id not in self._seen:
                self._seen.add(event.id)
                if len(self._seen) > 100_000:
                    self._seen.clear()
                self._write(event)
            return await inner(attempt)

        return handle

    def _write(self, event: Event[Any]) -> None:
        now = time.time()
        if self._file is None:
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
            self._file.write(_header(source="node", started=now))
            self._t0 = now
        assert self._t0 is not None
        self._file.write(recorded_line(event, now - self._t0))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _event_from_message(data: bytes, headers: dict[str, str] | None) -> Event[Any] | None:
    try:
        return decode_event(data)
    except EnvelopeDecodeError:
        pass
    h = headers or {}
    if "ce-type" not in h:
        return None
    try:
        return Event.new(
            h["ce-type"],
            data or None,
            source=h.get("ce-source", "/"),
            id=h.get("ce-id"),
            datacontenttype=h.get("Content-Type") or h.get("ce-datacontenttype"),
            key=h.get("ce-partitionkey"),
        )
    except ValueError:
        return None


def _url(args: argparse.Namespace) -> str:
    if args.nats:
        return ",".join(args.nats)
    try:
        info = json.loads((Path(args.data_dir) / "server.json").read_text())
        return str(info["url"])
    except (OSError, ValueError, KeyError):
        from .._cli.common import UserError

        raise UserError(f"no --nats URL and no running `crosswire run` server in {args.data_dir}") from None


async def record_stream(args: argparse.Namespace) -> int:
    """``crosswire record``: read the stream with direct gets (nothing is consumed)."""
    import nats
    from nats.js.errors import NotFoundError

    from .._cli.common import UserError

    options: dict[str, Any] = {}
    if args.user:
        options.update(user=args.user, password=args.password)
    if args.token:
        options["token"] = args.token
    if args.creds:
        options["user_credentials"] = args.creds
    url = _url(args)
    try:
        nc = await nats.connect(url.split(","), connect_timeout=5, max_reconnect_attempts=2, **options)
    except Exception as exc:
        raise UserError(f"cannot connect to {url}: {exc}") from None
    js = nc.jetstream()
    subject = f"{args.prefix}.{args.subject}"
    written = 0
    try:
        try:
            info = await js.stream_info(args.stream)
        except NotFoundError:
            raise UserError(f"no stream {args.stream!r} on {url}") from None
        seq = max(1, info.state.first_seq)
        since = time.time() - args.since if args.since else None
        follow_until = time.monotonic() + args.follow if args.follow else None
        t0: float | None = None
        with open(args.output, "wb") as out:  # noqa: ASYNC230 - a local file, written as events arrive
            out.write(_header(source="stream", stream=args.stream, subject=subject, url=url, started=time.time()))
            while written < args.limit:
                try:
                    msg = await js.get_msg(args.stream, seq=seq, subject=subject, next=True)
                except NotFoundError:
                    if follow_until is None or time.monotonic() >= follow_until:
                        break
                    await asyncio.sleep(0.2)
                    continue
                seq = (msg.seq or seq) + 1
                at = msg.time.timestamp() if msg.time is not None else time.time()
                if since is not None and at < since:
                    continue
                event = _event_from_message(msg.data or b"", msg.headers)
                if event is None:
                    continue
                if t0 is None:
                    t0 = at
                out.write(recorded_line(event, at - t0))
                written += 1
    finally:
        await nc.close()
    print(f"recorded {written} events from {args.stream} ({subject}) into {args.output}")
    return 0
