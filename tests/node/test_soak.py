"""Soak: the exactly-once properties with many more random schedules (``make soak``)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .test_properties import plans, run

pytestmark = pytest.mark.soak


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans=plans, max_attempts=st.integers(1, 6), concurrency=st.integers(1, 16), keyed=st.booleans())
def test_every_event_ends_exactly_once_x1000(
    plans: list[list[str]], max_attempts: int, concurrency: int, keyed: bool
) -> None:
    asyncio.run(run(plans, max_attempts, concurrency, keyed))
