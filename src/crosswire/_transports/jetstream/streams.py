"""Attaching to JetStream streams: create what is missing, never reconfigure what exists.

crosswire creates a stream with its own settings when the stream does not exist. An
existing stream is used as it is — an operator's R3 stream stays R3, its ``max_age``
and duplicate window stay theirs. Where its settings differ from what this
transport was configured with, a warning names each difference; with
``strict=True`` the transport refuses to start instead. A stream whose subjects do
not cover what crosswire publishes on is always refused (events would be lost).
With ``create=False`` (read-only commands) a missing stream is an error and nothing
is created.

A leaf module: it imports nothing else of the JetStream package.
"""

from __future__ import annotations

import logging

import nats.js.errors
from nats.js import JetStreamContext, api

from ..._exceptions import ConfigurationError, TransportError

__all__ = ["attach_stream", "ensure_stream", "stream_differences"]

log = logging.getLogger("crosswire.jetstream")


def stream_differences(found: api.StreamConfig, wanted: api.StreamConfig) -> list[str]:
    """``"<setting>: the stream has X, this node is configured with Y"`` for each
    setting crosswire chooses that the existing stream has otherwise."""
    out: list[str] = []

    def differs(name: str, have: object, want: object) -> None:
        if have != want:
            out.append(f"{name}: the stream has {have!r}, this node is configured with {want!r}")

    differs("replicas", found.num_replicas or 1, wanted.num_replicas or 1)
    differs("max_age", found.max_age or None, wanted.max_age or None)
    differs("duplicate_window", found.duplicate_window or None, wanted.duplicate_window or None)
    differs("storage", _value(found.storage), _value(wanted.storage))
    if wanted.max_msgs_per_subject not in (None, -1):
        differs("max_msgs_per_subject", found.max_msgs_per_subject, wanted.max_msgs_per_subject)
    return out


def _value(x: object) -> object:
    return getattr(x, "value", x)


async def attach_stream(
    js: JetStreamContext, config: api.StreamConfig, *, create: bool = True, strict: bool = False
) -> api.StreamInfo | None:
    """The stream's info: created with ``config`` if it does not exist (and
    ``create``), else as it is, checked against ``config``. ``None``: it does not exist
    and ``create`` is false.

    :raises ConfigurationError: its subjects miss ours, or (``strict``) a setting differs.
    :raises TransportError: the broker refused or did not answer.
    """
    assert config.name is not None
    try:
        try:
            info = await js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            if not create:
                return None
            try:
                return await js.add_stream(config)
            except nats.js.errors.BadRequestError:
                info = await js.stream_info(config.name)  # created concurrently by another node
    except Exception as exc:
        raise TransportError(f"cannot read or create stream {config.name}: {exc}") from exc
    found = info.config
    missing = [s for s in config.subjects or [] if s not in (found.subjects or [])]
    if missing:
        raise ConfigurationError(
            f"stream {config.name} exists with subjects {found.subjects}, which miss {missing}: "
            "crosswire would publish where it does not store; use another stream name or fix the stream"
        )
    differences = stream_differences(found, config)
    if differences:
        text = "; ".join(differences)
        if strict:
            raise ConfigurationError(f"stream {config.name} exists with other settings (strict): {text}")
        log.warning("stream %s is used as it is, not reconfigured: %s", config.name, text)
    return info


async def ensure_stream(js: JetStreamContext, config: api.StreamConfig) -> api.StreamInfo:
    """Create the stream if it does not exist; use it as it is otherwise (warning
    where it differs). Returns its info.

    :raises TransportError: the broker refused.
    """
    info = await attach_stream(js, config)
    assert info is not None
    return info
