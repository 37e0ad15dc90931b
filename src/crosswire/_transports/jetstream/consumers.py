"""Durable pull consumers: one per subscription group, and where a new one starts.

A group's consumer is created once; its start position (``deliver_policy``) is fixed
then and kept by every later subscription, in any process. What a *new* group gets:

- ``"new"``: events published after the group was created;
- ``"all"``: every event the stream still holds;
- a :class:`datetime`: events published at or after that time;
- ``None`` (the default): ``"all"`` on a stream that no group consumed yet when the
  transport started (a fresh system: the first node handles what was submitted
  before it ran), ``"new"`` on a stream that other groups already consume (a binding
  added to a running system does not replay the stream's history).

A leaf module: it imports nothing else of the JetStream package.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from nats.aio.client import Client as NatsClient

from ..._exceptions import ConfigurationError, TransportError

__all__ = ["Start", "check_start", "consumer_config", "ensure_consumer", "parse_start"]

Start = Literal["new", "all"] | datetime
"""Where a group created now starts: see the module docstring."""

_ALREADY_EXISTS = 10148  # JetStream error code: consumer already exists (action "create")


def check_start(start: object) -> None:
    """:raises ConfigurationError: ``start`` is not ``"new"``, ``"all"``, a datetime or None."""
    if start is None or start in ("new", "all"):
        return
    if isinstance(start, datetime):
        if start.tzinfo is None:
            raise ConfigurationError(f"start time {start.isoformat()} needs a time zone (e.g. UTC)")
        return
    raise ConfigurationError(f"start must be 'new', 'all' or a datetime, got {start!r}")


def parse_start(value: str) -> Start:
    """``new``, ``all`` or an ISO 8601 time with a zone (``2026-01-31T12:00:00Z``).

    :raises ConfigurationError: anything else.
    """
    if value in ("new", "all"):
        return value  # type: ignore[return-value]
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"start {value!r} is not 'new', 'all' or an ISO 8601 time") from None
    check_start(when)
    return when


def consumer_config(
    name: str, group: str, filter_subject: str, ack_wait: float, max_ack_pending: int
) -> dict[str, Any]:
    """The settings of a group's durable pull consumer (without its start)."""
    return {
        "durable_name": name,
        "name": name,
        "description": f"crosswire group {group}"[:1000],
        "ack_policy": "explicit",
        "ack_wait": int(ack_wait * 1_000_000_000),
        "max_deliver": -1,
        "filter_subject": filter_subject,
        "replay_policy": "instant",
        "max_ack_pending": max_ack_pending,
        "max_waiting": 512,
    }


def _start_fields(start: Start) -> dict[str, Any]:
    if start == "new":
        return {"deliver_policy": "new"}
    if start == "all":
        return {"deliver_policy": "all"}
    assert isinstance(start, datetime)
    stamp = start.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {"deliver_policy": "by_start_time", "opt_start_time": stamp}


async def _api(nc: NatsClient, subject: str, body: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
    try:
        reply = await nc.request(subject, json.dumps(body).encode() if body is not None else b"", timeout=timeout)
    except Exception as exc:
        raise TransportError(f"{subject}: {exc!r}") from exc
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


async def ensure_consumer(
    nc: NatsClient, stream: str, name: str, config: dict[str, Any], start: Start, *, timeout: float
) -> bool:
    """Create the durable consumer ``name`` starting at ``start``, or update an existing
    one to ``config`` while keeping where it started. Returns whether it was created.

    :raises TransportError: the broker refused.
    """
    what = f"consumer {name} on {stream}"
    existing = await _api(nc, f"$JS.API.CONSUMER.INFO.{stream}.{name}", None, timeout)
    if "error" in existing:
        if existing["error"].get("code") != 404:
            raise TransportError(f"cannot read {what}: {existing['error'].get('description')}")
        body = {"stream_name": stream, "config": {**config, **_start_fields(start)}, "action": "create"}
        answer = await _api(nc, f"$JS.API.CONSUMER.CREATE.{stream}.{name}", body, timeout)
        if "error" not in answer:
            return True
        if answer["error"].get("err_code") != _ALREADY_EXISTS:
            raise TransportError(f"cannot create {what}: {answer['error'].get('description')}")
        existing = await _api(nc, f"$JS.API.CONSUMER.INFO.{stream}.{name}", None, timeout)  # created meanwhile
        if "error" in existing:
            raise TransportError(f"cannot read {what}: {existing['error'].get('description')}")
    current = existing.get("config", {})
    kept = {k: current[k] for k in ("deliver_policy", "opt_start_time", "opt_start_seq") if k in current}
    body = {"stream_name": stream, "config": {**config, **kept}}
    answer = await _api(nc, f"$JS.API.CONSUMER.CREATE.{stream}.{name}", body, timeout)
    if "error" in answer:
        raise TransportError(f"cannot update {what}: {answer['error'].get('description')}")
    return False
