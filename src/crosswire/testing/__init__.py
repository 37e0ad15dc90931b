"""Test harness shipped with crosswire: the transport conformance suite and helpers.

Run the suite on a transport by subclassing :class:`TransportConformance` in a pytest
module (needs ``pytest`` and ``pytest-asyncio`` with ``asyncio_mode = "auto"``)::

    import pytest
    from crosswire.transports import Features
    from crosswire.testing import TransportConformance

    class TestMyTransport(TransportConformance):
        features = Features(durable=True)

        @pytest.fixture
        async def transport(self):
            t = MyTransport()
            await t.start()
            yield t
            await t.close()

A durable transport also gives an ``open_transport`` fixture (another transport on the
same store), for the cases that close a transport and open it again. The cases are one
table, :data:`CASES`; each row names the :class:`Features` it needs.
"""

from .._transports.base import Features as Features
from ._context import Case as Case
from ._context import CaseContext as CaseContext
from ._context import OpenTransport as OpenTransport
from ._helpers import Collector as Collector
from ._helpers import Namespace as Namespace
from ._helpers import assert_no_more as assert_no_more
from ._helpers import collect as collect
from ._helpers import eventually as eventually
from ._helpers import next_delivery as next_delivery
from ._suite import CASES as CASES
from ._suite import TransportConformance as TransportConformance

__all__ = [
    "CASES",
    "Case",
    "CaseContext",
    "Collector",
    "Features",
    "Namespace",
    "OpenTransport",
    "TransportConformance",
    "assert_no_more",
    "collect",
    "eventually",
    "next_delivery",
]
