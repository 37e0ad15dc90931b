"""The transport conformance suite on :class:`MemoryTransport`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from crosswire._transports.base import Features
from crosswire._transports.memory import MemoryTransport
from crosswire.testing import TransportConformance


class TestMemoryTransport(TransportConformance):
    features = Features(durable=False)

    @pytest.fixture
    async def transport(self) -> AsyncIterator[MemoryTransport]:
        t = MemoryTransport()
        await t.start()
        yield t
        await t.close()
