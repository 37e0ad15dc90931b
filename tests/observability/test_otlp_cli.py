"""`crosswire run --otlp-endpoint` and `crosswire submit --traceparent`, as a user runs
them, exporting to an OTLP/HTTP endpoint that decodes the official protobuf messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .otlp_receiver import Receiver, serve

HERE = Path(__file__).parent
CROSSWIRE = [sys.executable, "-m", "crosswire._cli"]
GIVEN_TRACE = "5b8efff798038103d269b633813fc60c"
GIVEN = f"00-{GIVEN_TRACE}-eee19b7ec3c1b174-01"

pytestmark = pytest.mark.nats


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec, server = serve()
    yield rec
    server.shutdown()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**env, **extra}


def test_run_and_submit_export_one_trace(tmp_path: Path, receiver: Receiver) -> None:
    log = tmp_path / "run.log"
    with open(log, "w") as f:
        node = subprocess.Popen(
            [*CROSSWIRE, "run", "obs_app:app", "--otlp-endpoint", receiver.endpoint, "--data-dir", str(tmp_path)],
            cwd=HERE,
            stdout=f,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(OTEL_SERVICE_NAME="obs-node", OTEL_BSP_SCHEDULE_DELAY="100"),
        )
    try:
        deadline = time.monotonic() + 30
        while "ready on" not in log.read_text():
            assert node.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        submitted = subprocess.run(
            [*CROSSWIRE, "submit", "obs.ping", "--data", "{}", "--traceparent", GIVEN, "--data-dir", str(tmp_path)],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_SERVICE_NAME="obs-cli"),
        )
        assert submitted.returncode == 0, submitted.stderr
        assert f"trace_id {GIVEN_TRACE}" in submitted.stderr
        event_id = submitted.stdout.strip()
        spans = receiver.wait_for(lambda s: sum(x.name == "process obs.ping" for x in s) == 2)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(30)

    send = [s for s in spans if s.name == "send obs.ping"]
    assert len(send) == 1 and send[0].resource["service.name"] == "obs-cli"
    assert send[0].trace_id == GIVEN_TRACE and send[0].parent_id == "eee19b7ec3c1b174"
    assert send[0].kind == 4  # protobuf SPAN_KIND_PRODUCER
    process = sorted((s for s in spans if s.name == "process obs.ping"), key=lambda s: s.start_ns)
    for span in process:
        assert span.resource["service.name"] == "obs-node"
        assert span.trace_id == GIVEN_TRACE
        assert span.parent_id == send[0].span_id
        assert span.links == [(GIVEN_TRACE, send[0].span_id)]
        assert span.kind == 5  # SPAN_KIND_CONSUMER
        assert span.attributes["messaging.system"] == "nats"
        assert span.attributes["messaging.message.id"] == event_id
        assert span.attributes["messaging.consumer.group.name"] == "obs.ping"
    assert [s.attributes["crosswire.attempt"] for s in process] == [1, 2]
    assert process[0].attributes["error.type"] == "handler_error" and process[0].status_code == 2
    assert [e[0] for e in process[0].events] == ["retry"]


def test_submit_without_export_starts_a_fresh_trace_and_prints_its_id(tmp_path: Path) -> None:
    # no node and no OTEL_* variable: submit starts the embedded server for the command
    ids = []
    for _ in range(2):
        result = subprocess.run(
            [*CROSSWIRE, "submit", "obs.ping", "--data", "{}", "--data-dir", str(tmp_path)],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
        assert result.returncode == 0, result.stderr
        line = next(x for x in result.stderr.splitlines() if x.startswith("trace_id "))
        trace_id = line.split()[1]
        assert len(trace_id) == 32 and int(trace_id, 16) != 0
        ids.append(trace_id)
    assert ids[0] != ids[1]  # each submit is a trace of its own


def test_submit_rejects_a_bad_traceparent_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CROSSWIRE, "submit", "obs.ping", "--traceparent", "nope", "--data-dir", str(tmp_path)],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert result.returncode == 3 and "traceparent" in result.stderr and "Traceback" not in result.stderr


def test_run_with_otlp_endpoint_reports_a_bad_app_in_one_line(receiver: Receiver) -> None:
    node = subprocess.run(
        [*CROSSWIRE, "run", "no_such_module:app", "--otlp-endpoint", receiver.endpoint, "--memory"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert node.returncode == 3 and "cannot import module" in node.stderr
