"""Creating and updating JetStream streams.

A leaf module: it imports nothing else of the JetStream package.
"""

from __future__ import annotations

import nats.js.errors
from nats.js import JetStreamContext, api

from ..._exceptions import TransportError

__all__ = ["ensure_stream"]


async def ensure_stream(js: JetStreamContext, config: api.StreamConfig) -> api.StreamInfo:
    """Create the stream, or update it to ``config`` if it exists. Idempotent. Returns
    the stream's info as it was found (or created).

    :raises TransportError: the broker refused.
    """
    assert config.name is not None
    try:
        try:
            info = await js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            try:
                return await js.add_stream(config)
            except nats.js.errors.BadRequestError:
                info = await js.stream_info(config.name)  # created concurrently by another node
        await js.update_stream(config)
        return info
    except Exception as exc:
        raise TransportError(f"cannot create or update stream {config.name}: {exc}") from exc
