"""The harness's submit messages to the node in its child process are bounded in bytes."""

from __future__ import annotations

import crosswire
from crosswire._envelope import decode_event
from crosswire.harness.delivery import SUBMIT_BYTES, submit_messages


def test_submit_messages_are_bounded_in_bytes_not_events() -> None:
    events = [crosswire.Event.new("t.big", bytes([i]) * 128 * 1024) for i in range(40)]
    groups = submit_messages(events)
    assert all(sum(map(len, g)) <= SUBMIT_BYTES for g in groups)
    assert len(groups) >= 40 * 128 * 1024 // SUBMIT_BYTES  # not one message of 5 MiB
    assert [decode_event(raw).id for g in groups for raw in g] == [e.id for e in events]  # all, in order


def test_an_event_larger_than_the_cap_goes_alone_and_small_ones_share() -> None:
    big = crosswire.Event.new("t.big", b"x" * (SUBMIT_BYTES + 1))
    small = [crosswire.Event.new("t.small", b"y") for _ in range(100)]
    groups = submit_messages([*small, big, *small])
    assert [len(g) for g in groups] == [100, 1, 100]
