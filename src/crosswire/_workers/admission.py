"""Who may take a worker's slot (spec/protocol.md, "Authentication").

A spawned worker gets a fresh token per spawn (``CROSSWIRE_TOKEN``) and must send it
in ``hello``; an SDK that sends none is still accepted when ``SO_PEERCRED`` says the
peer is the spawned process or one of its descendants. An external worker must send
its configured token, if it has one.
"""

from __future__ import annotations

import hmac
import secrets

from .frames import Hello
from .process import descends_from

__all__ = ["authentic", "new_token", "same_types"]


def new_token() -> str:
    """A fresh secret for one spawn (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def authentic(
    hello: Hello, *, expected: str | None, spawns: bool, spawned_pid: int | None, peer_pid: int | None
) -> bool:
    """Whether ``hello`` comes from the slot's own worker.

    :param expected: the token the slot expects (None: an external worker without one,
        or a spawned worker that was not spawned yet).
    :param spawns: whether the slot's worker is spawned by the node.
    """
    if expected is None:
        return not spawns  # a spawned worker before its first spawn: nobody is it
    if hello.token is not None:
        return hmac.compare_digest(hello.token.encode(), expected.encode())
    return spawned_pid is not None and peer_pid is not None and descends_from(peer_pid, spawned_pid)


def same_types(first: tuple[str, ...], hello: Hello) -> str | None:
    """None if ``hello`` serves the types the node bound at start, else why not."""
    if not first or sorted(set(hello.types)) == sorted(first):
        return None
    return f"expected {sorted(first)}, got {sorted(set(hello.types))}"
