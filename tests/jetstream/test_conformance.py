"""The transport conformance suite on JetStreamTransport (a real nats-server).

``ordered_per_key`` is not declared: a JetStream consumer redelivers a retried
message after later messages of the same key (the node's dispatcher orders by key
within one node; across a retry, order is not guaranteed).
"""

from __future__ import annotations

import pytest

from crosswire._transports.base import Features
from crosswire.jetstream import JetStreamTransport
from crosswire.testing import OpenTransport, TransportConformance

pytestmark = pytest.mark.nats


class TestJetStreamTransport(TransportConformance):
    features = Features(durable=True, ordered_per_key=False)
    timeout = 30.0
    ack_wait = 2.0

    # ``transport`` is the fixture of conftest.py: a JetStreamTransport on the session's
    # nats-server with a stream of its own, dropped after the test.

    @pytest.fixture
    def open_transport(self, nats_url: str, names: tuple[str, str]) -> OpenTransport:
        """Another connection to the same server, stream and prefix as ``transport``."""
        stream, prefix = names

        async def open_() -> JetStreamTransport:
            t = JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix, publish_timeout=5.0)
            await t.start()
            return t

        return open_

    @pytest.mark.soak
    async def test_stress(self, transport: JetStreamTransport, open_transport: OpenTransport) -> None:  # type: ignore[override]
        # 20 suites at once on one connection and a shared machine: a case that holds
        # deliveries it took (collects a batch, then settles) can take longer than a
        # 2 s lease; leases of deliveries still queued are renewed by the transport.
        self.ack_wait = 5.0
        await super().test_stress(transport, open_transport)
