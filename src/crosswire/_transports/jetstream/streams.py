"""Creating and updating JetStream streams.

A leaf module: it imports nothing else of the JetStream package.
"""

from __future__ import annotations

import nats.js.errors
from nats.js import JetStreamContext, api

from ..._exceptions import TransportError

__all__ = ["ensure_stream"]


async def ensure_stream(js: JetStreamContext, config: api.StreamConfig) -> None:
    """Create the stream, or update it to ``config`` if it exists. Idempotent.

    :raises TransportError: the broker refused.
    """
    assert config.name is not None
    try:
        try:
            await js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            try:
                await js.add_stream(config)
                return
            except nats.js.errors.BadRequestError:
                pass  # created concurrently by another node: update below
        await js.update_stream(config)
    except Exception as exc:
        raise TransportError(f"cannot create or update stream {config.name}: {exc}") from exc
