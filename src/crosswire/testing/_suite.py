"""The universal transport suite: one table of cases, the pytest tests generated from it,
and the stress runs.

Subclass :class:`TransportConformance` in a pytest module, set ``features`` and provide
an async ``transport`` fixture (and, for a durable transport, ``open_transport``).
Every case runs under its own :class:`Namespace` (type prefix and group names), so a
durable transport can share one broker across tests, and the stress tests can run the
whole table many times concurrently on one transport.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from .._transports.base import Features, Transport
from . import _cases_consume as consume
from . import _cases_publish as publish
from . import _cases_settle as settle
from ._context import Case, CaseContext, OpenTransport
from ._helpers import Namespace

__all__ = ["CASES", "TransportConformance"]

#: Every case, once: what it needs and what it does (Watermill's ``testFuncs``).
CASES: tuple[Case, ...] = (
    Case(name="payload_and_metadata_intact", run=publish.payload_and_metadata_intact),
    Case(name="concurrent_subscribe", run=consume.concurrent_subscribe, needs=("consumer_groups",)),
    Case(name="resend_on_error", run=settle.resend_on_error, needs=("redelivery",)),
    Case(name="redelivery_after_ack_wait", run=settle.redelivery_after_ack_wait, needs=("redelivery",)),
    Case(name="unacked_held_back_when_ordered", run=consume.unacked_held_back_when_ordered, needs=("ordered_per_key",)),
    Case(name="continue_after_close_and_reopen", run=consume.continue_after_close_and_reopen, needs=("redelivery",)),
    Case(name="concurrent_close", run=consume.concurrent_close),
    Case(name="continue_after_repeated_errors", run=settle.continue_after_repeated_errors, needs=("redelivery",)),
    Case(name="per_key_order", run=consume.per_key_order, needs=("ordered_per_key", "consumer_groups")),
    Case(name="concurrent_publishers", run=publish.concurrent_publishers),
    Case(name="publisher_close", run=publish.publisher_close, needs=("durable",), reopens=True),
    Case(name="topic_isolation", run=publish.topic_isolation),
    Case(name="consumer_groups", run=consume.consumer_groups, needs=("consumer_groups",)),
    Case(name="publish_dedup", run=publish.publish_dedup),
    Case(name="bad_input", run=publish.bad_input),
    Case(name="terminate_never_redelivers", run=settle.terminate_never_redelivers, needs=("redelivery",)),
    Case(name="ack_after_close_harmless", run=settle.ack_after_close_harmless),
    Case(name="ack_after_transport_close", run=settle.ack_after_transport_close, closes=True),
)

_BY_NAME = {case.name: case for case in CASES}
assert len(_BY_NAME) == len(CASES), "case names must be unique"


class TransportConformance:
    """Behaviour every transport must show, switched by its :class:`Features`.

    Subclass it (the subclass name must start with ``Test``) and provide::

        features = Features(durable=False)

        @pytest.fixture
        async def transport(self):
            t = MyTransport(); await t.start(); yield t; await t.close()

    A durable transport also provides ``open_transport``: a fixture returning an async
    function that opens and starts another transport on the same store (the case closes
    it), used by the cases that close a transport and reopen it.

    ``test_case[<name>]`` runs one row of :data:`CASES` (skipped when the transport does
    not declare a feature the case needs); ``test_stress_x3`` and ``test_stress`` run
    the applicable rows concurrently. Tunables (class attributes): ``timeout`` bounds
    every wait, in seconds; ``quiet`` is how long "nothing more arrives" is watched;
    ``ack_wait`` is passed to subscriptions whose unsettled deliveries must come back.
    """

    features: ClassVar[Features] = Features()
    timeout: ClassVar[float] = 30.0
    quiet: ClassVar[float] = 0.3
    ack_wait: ClassVar[float] = 2.0
    stress_rounds: ClassVar[int] = 20

    @pytest.fixture
    def open_transport(self) -> OpenTransport | None:
        """Override in a durable transport's test class; see the class docstring."""
        return None

    def context(self, transport: Transport, open_transport: OpenTransport | None = None) -> CaseContext:
        """What a case is given, under a fresh namespace."""
        return CaseContext(
            transport=transport,
            ns=Namespace(),
            features=self.features,
            timeout=self.timeout,
            quiet=self.quiet,
            ack_wait=self.ack_wait,
            open_transport=open_transport,
        )

    async def run_case(self, name: str, transport: Transport, open_transport: OpenTransport | None = None) -> None:
        """Run the case ``name`` of :data:`CASES` once (for a transport's own tests)."""
        await _BY_NAME[name].run(self.context(transport, open_transport))

    def _skip_reason(self, case: Case, open_transport: OpenTransport | None) -> str | None:
        """Why ``case`` does not run here, or ``None``: the one place its needs are checked.

        A case that applies but lacks its fixture fails: it must not pass unchecked.
        """
        missing = case.missing(self.features)
        if missing:
            return f"transport does not declare {', '.join(missing)}"
        if case.reopens and open_transport is None:
            pytest.fail(
                f"case {case.name} needs an `open_transport` fixture: a {type(self).__name__} with "
                f"{', '.join(case.needs)} must be able to open a second transport on the same store"
            )
        return None

    @pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
    async def test_case(self, transport: Transport, open_transport: OpenTransport | None, case: Case) -> None:
        reason = self._skip_reason(case, open_transport)
        if reason is not None:
            pytest.skip(reason)
        await case.run(self.context(transport, open_transport))

    async def test_stress_x3(self, transport: Transport, open_transport: OpenTransport | None) -> None:
        """The whole table, three times concurrently on one transport."""
        await self._stress(transport, open_transport, 3)

    async def test_stress(self, transport: Transport, open_transport: OpenTransport | None) -> None:
        """The whole table, ``stress_rounds`` times concurrently on one transport.

        A few seconds on the memory transport; a slower transport should override it
        with ``@pytest.mark.soak`` (see docs/transports.md).
        """
        await self._stress(transport, open_transport, self.stress_rounds)

    async def _stress(self, transport: Transport, open_transport: OpenTransport | None, rounds: int) -> None:
        # a case that closes the transport it is given cannot share it
        cases = [c for c in CASES if not c.closes and self._skip_reason(c, open_transport) is None]

        async def one(round_no: int, case: Case) -> None:
            ctx = self.context(transport, open_transport)
            try:
                await case.run(ctx)
            except AssertionError as exc:
                raise AssertionError(f"round {round_no} case {case.name} ({ctx.ns}): {exc}") from exc

        async with asyncio.TaskGroup() as tg:
            for round_no in range(rounds):
                for case in cases:
                    tg.create_task(one(round_no, case))
