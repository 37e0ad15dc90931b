"""NATS-style subjects: event types are dot-separated tokens, patterns may use wildcards.

- ``order.created`` matches only itself;
- ``*`` matches exactly one token: ``order.*`` matches ``order.created`` but not
  ``order`` or ``order.created.eu``;
- ``>`` matches one or more trailing tokens and must be last: ``order.>`` matches
  ``order.created`` and ``order.created.eu`` but not ``order``.

Tokens are non-empty and contain no whitespace; ``*`` and ``>`` are wildcards only as
whole tokens and are not allowed in event types. Both validators raise ``ValueError``
naming what was wrong. Compiled patterns are cached, so matching is a tuple compare.
"""

from __future__ import annotations

import functools
import re

__all__ = ["compile_pattern", "subject_matches", "validate_pattern", "validate_type"]

_WHITESPACE = re.compile(r"\s")


def _tokens(text: str, what: str) -> list[str]:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError(f"{what} must not be empty")
    if _WHITESPACE.search(text):
        raise ValueError(f"{what} {text!r} contains whitespace")
    tokens = text.split(".")
    for index, token in enumerate(tokens):
        if not token:
            raise ValueError(f"{what} {text!r} has an empty token at position {index + 1}")
    return tokens


@functools.lru_cache(maxsize=4096)
def validate_type(event_type: str) -> str:
    """Check that ``event_type`` is a concrete subject (no wildcards); returns it (cached).

    :raises ValueError: empty, whitespace, an empty token, or a wildcard character.
    """
    for token in _tokens(event_type, "event type"):
        if "*" in token or ">" in token:
            raise ValueError(
                f"event type {event_type!r} contains a wildcard ({token!r}); "
                "wildcards are only allowed in subscription patterns"
            )
    return event_type


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> tuple[str, ...]:
    """Validate ``pattern`` and return its tokens (cached).

    :raises ValueError: empty, whitespace, an empty token, ``*``/``>`` inside a token,
        or ``>`` anywhere but last.
    """
    tokens = _tokens(pattern, "pattern")
    last = len(tokens) - 1
    for index, token in enumerate(tokens):
        if token in ("*", ">"):
            if token == ">" and index != last:
                raise ValueError(f"pattern {pattern!r}: '>' must be the last token")
            continue
        if "*" in token or ">" in token:
            raise ValueError(f"pattern {pattern!r}: wildcards must be whole tokens, got {token!r}")
    return tuple(tokens)


def validate_pattern(pattern: str) -> str:
    """Check a subscription pattern; returns it. See :func:`compile_pattern`."""
    compile_pattern(pattern)
    return pattern


def _is_literal(tokens: tuple[str, ...]) -> bool:
    return "*" not in tokens and ">" not in tokens


@functools.lru_cache(maxsize=16384)
def subject_matches(pattern: str, subject: str) -> bool:
    """Whether ``subject`` (an event type) matches ``pattern``.

    :raises ValueError: if ``pattern`` is not a valid pattern.
    """
    tokens = compile_pattern(pattern)
    if _is_literal(tokens):
        return pattern == subject
    parts = subject.split(".")
    if tokens[-1] == ">":
        head = tokens[:-1]
        if len(parts) <= len(head):
            return False
    else:
        head = tokens
        if len(parts) != len(head):
            return False
    return all(want == "*" or want == got for want, got in zip(head, parts, strict=False))
