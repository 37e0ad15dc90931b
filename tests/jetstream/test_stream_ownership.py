"""crosswire never reconfigures a stream it did not create that way: an existing
stream is used as it is (a warning names each difference; strict refuses), and a
read-only transport creates nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

import nats
import pytest
from nats.js import api

from crosswire import ConfigurationError, Event, TransportError
from crosswire.jetstream import JetStreamTransport

pytestmark = pytest.mark.nats


async def test_an_existing_stream_is_used_as_it_is_with_a_warning(
    nats_url: str, names: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    stream, prefix = names
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"{prefix}.>"], max_age=600, duplicate_window=30)
    try:
        caplog.set_level(logging.WARNING, logger="crosswire.jetstream")
        async with JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix) as t:
            await t.publish([Event.new("own.x", b"1")])
        info = await js.stream_info(stream)
        assert info.config.max_age == 600 and info.config.duplicate_window == 30  # not reconfigured
        warned = " ".join(r.getMessage() for r in caplog.records)
        assert "not reconfigured" in warned and "max_age" in warned and "duplicate_window" in warned
        with pytest.raises(ConfigurationError, match="strict"):
            await JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix, strict_stream=True).start()
        # settings that match are fine in strict mode too
        same = JetStreamTransport(
            nats_url, stream=stream, subject_prefix=prefix, strict_stream=True, max_age=600, duplicate_window=30
        )
        async with same:
            pass
    finally:
        await js.delete_stream(stream)
        await nc.close()


async def test_a_stream_whose_subjects_miss_ours_is_refused(nats_url: str, names: tuple[str, str]) -> None:
    stream, prefix = names
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=["elsewhere.>"])
    try:
        with pytest.raises(ConfigurationError, match="miss"):
            await JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix).start()
        assert (await js.stream_info(stream)).config.subjects == ["elsewhere.>"]
    finally:
        await js.delete_stream(stream)
        await nc.close()


async def test_read_only_creates_no_stream_and_no_consumer(nats_url: str, names: tuple[str, str]) -> None:
    stream, prefix = names
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        with pytest.raises(TransportError, match="does not exist"):
            await JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix, read_only=True).start()
        await js.add_stream(
            api.StreamConfig(name=stream, subjects=[f"{prefix}.>"], num_replicas=1, max_age=300, duplicate_window=20)
        )
        async with JetStreamTransport(nats_url, stream=stream, subject_prefix=prefix, read_only=True) as t:
            assert await t.dead_letter_store().list() == []  # no dead-letter stream: nothing to list
            with pytest.raises(ConfigurationError, match="read-only"):
                await t.subscribe("own.x", "g")
        names_now = [s.config.name for s in await js.streams_info()]
        assert f"{stream}_DLQ" not in names_now and f"KV_{stream}_ATTEMPTS" not in names_now
        info = await js.stream_info(stream)
        assert info.config.max_age == 300 and info.state.consumer_count == 0
    finally:
        for name in (stream, f"{stream}_DLQ"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
        await nc.close()


async def test_crosswire_dlq_list_reconfigures_and_creates_nothing(nats_url: str, names: tuple[str, str]) -> None:
    stream, _ = names
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=["cw.>"], max_age=900, duplicate_window=45)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crosswire._cli", "dlq", "list", "--nats", nats_url, "--stream", stream,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        info = await js.stream_info(stream)
        assert (info.config.max_age, info.config.duplicate_window, info.state.consumer_count) == (900, 45, 0)
        assert f"{stream}_DLQ" not in [s.config.name for s in await js.streams_info()]
    finally:
        await js.delete_stream(stream)
        await nc.close()
