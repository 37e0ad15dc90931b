"""The subject and the envelope agree: an event published on another type's subject,
or whose headers contradict its body, is dead-lettered as invalid_argument and never
handed to the handler its subject names."""

from __future__ import annotations

import pytest

import crosswire
from crosswire import ErrorCode, Event, encode_event
from crosswire.jetstream import JetStreamTransport
from crosswire.testing import eventually

pytestmark = pytest.mark.nats


async def test_an_event_on_another_types_subject_is_dead_lettered_not_handled(
    nats_url: str, names: tuple[str, str]
) -> None:
    stream, prefix = names
    app = crosswire.App("subjects")
    ran: list[tuple[str, str]] = []

    @app.handler("bad.typed")
    async def typed(event: crosswire.Event[bytes]) -> None:
        ran.append(("bad.typed", event.id))

    @app.handler("bad.elsewhere")
    async def elsewhere(event: crosswire.Event[bytes]) -> None:
        ran.append(("bad.elsewhere", event.id))

    transport = JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix)
    async with crosswire.Node(app, transport=transport):
        js = transport.jetstream
        wrong_subject = Event.new("bad.elsewhere", b"x")
        await js.publish(f"{prefix}.bad.typed", encode_event(wrong_subject), headers={"Nats-Msg-Id": wrong_subject.id})
        wrong_header = Event.new("bad.typed", b"y")
        await js.publish(
            f"{prefix}.bad.typed",
            encode_event(wrong_header),
            headers={"Nats-Msg-Id": wrong_header.id, "ce-type": "bad.elsewhere"},
        )
        good = Event.new("bad.typed", b"z")
        await transport.publish([good])
        store = transport.dead_letter_store()

        async def two_letters() -> bool:
            return len(await store.list()) == 2

        await eventually(two_letters, "both contradicting events dead-lettered", 10)
        await eventually(lambda: ("bad.typed", good.id) in ran, "the good event handled", 10)
        letters = await store.list()
    assert ran == [("bad.typed", good.id)]
    assert {letter.error.code for letter in letters} == {ErrorCode.INVALID_ARGUMENT}
    messages = sorted(letter.error.message for letter in letters)
    assert any(f"published on '{prefix}.bad.typed'" in m and "'bad.elsewhere'" in m for m in messages), messages
    assert any("header ce-type is 'bad.elsewhere'" in m for m in messages), messages
