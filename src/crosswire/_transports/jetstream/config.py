"""Names and checks shared by the JetStream modules: subjects, stream and consumer names.

A leaf module: it imports nothing else of the JetStream package.
"""

from __future__ import annotations

import hashlib
import re

from ..._exceptions import ConfigurationError

__all__ = ["check_positive", "check_stream_name", "check_subject_part", "consumer_name"]

_TOKEN = re.compile(r"^[A-Za-z0-9_\-]+$")
_CONSUMER_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def consumer_name(group: str) -> str:
    """The durable consumer name for a subscription group.

    NATS names allow ``A-Z a-z 0-9 _ -``; any other character becomes ``_`` and a
    short hash of the original group is appended, so distinct groups never share a
    consumer and every node derives the same name.
    """
    if not group:
        raise ConfigurationError("subscription group must not be empty")
    safe = _CONSUMER_UNSAFE.sub("_", group)
    if safe != group or len(safe) > 200:
        digest = hashlib.sha256(group.encode()).hexdigest()[:10]
        safe = f"{safe[:180]}_{digest}"
    return safe


def check_stream_name(stream: str) -> None:
    """:raises ConfigurationError: ``stream`` is not a valid JetStream stream name."""
    if not _TOKEN.match(stream):
        raise ConfigurationError(f"stream name {stream!r} must be letters, digits, '_' or '-'")


def check_subject_part(kind: str, value: str, *, wildcards: bool) -> None:
    """:raises ConfigurationError: ``value`` is not usable inside a NATS subject."""
    tokens = value.split(".")
    for i, token in enumerate(tokens):
        if wildcards and (token == "*" or (token == ">" and i == len(tokens) - 1)):
            continue
        if not token or any(c in token for c in " \t\r\n*>"):
            raise ConfigurationError(
                f"{kind} {value!r} is not a valid NATS subject part: tokens are separated "
                "by single dots and may not be empty or contain whitespace, '*' or '>'"
                + (" (except whole-token '*' and a final '>')" if wildcards else "")
            )


def check_positive(*, nullable: bool = False, **values: float | None) -> None:
    """:raises ConfigurationError: a value is not > 0 (or ``None``, when ``nullable``)."""
    for name, value in values.items():
        if value is None and nullable:
            continue
        if value is None or not value > 0:
            raise ConfigurationError(f"{name} must be > 0{' or None' if nullable else ''}, got {value!r}")
