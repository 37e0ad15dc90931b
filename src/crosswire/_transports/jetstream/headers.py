"""A NATS client whose header parsing is cheap on the common case.

Every crosswire event on NATS is a CloudEvent in binary content mode, so every
delivery carries a header block of some ten ``ce-*`` lines, and nats-py parses it
line by line in Python. :class:`Client` decodes the block once and splits it: the
same result for every block without a status line (``NATS/1.0\\r\\nName: value...``);
a block with an inline status (``NATS/1.0 404``, heartbeats, flow control) goes to
nats-py's own parser. It overrides ``Client._process_headers``, a private method of
nats-py: the range in pyproject.toml pins the versions it is tested against, and
``tests/jetstream/test_headers.py`` checks the override still has its shape.
"""

from __future__ import annotations

from nats.aio.client import Client as NatsClient

__all__ = ["Client", "parse_header_block"]

_PLAIN = b"NATS/1.0\r\n"


def parse_header_block(block: bytes) -> dict[str, str] | None:
    """``Name: value`` lines after ``NATS/1.0`` as a dict (values stripped, names kept
    as sent), or ``None`` for a block this parser leaves to nats-py (an inline status,
    a name with whitespace or one that is not ASCII)."""
    if not block.startswith(_PLAIN):
        return None
    out: dict[str, str] = {}
    for line in block[len(_PLAIN) :].decode("utf-8", "replace").split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip()
        if not name or not name.isascii() or " " in name or "\t" in name:
            return None
        out[name] = value.strip()
    return out


class Client(NatsClient):
    """nats-py's client with :func:`parse_header_block` on the header path."""

    async def _process_headers(self, headers: bytes) -> dict[str, str] | None:
        if not headers:
            return None
        parsed = parse_header_block(headers)
        if parsed is not None:
            return parsed or None
        result: dict[str, str] | None = await super()._process_headers(headers)
        return result
