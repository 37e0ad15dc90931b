"""JetStreamTransport against a secured nats-server: user/password, token, TLS."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from crosswire import Event, TransportError
from crosswire.jetstream import JetStreamTransport, find_nats_server

pytestmark = pytest.mark.nats


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def secured_server(tmp_path: Path) -> AsyncIterator[Callable[[str], object]]:
    """Start nats-server with extra config lines; yields a starter returning the port."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(extra: str) -> int:
        port = _free_port()
        config = tmp_path / f"server-{port}.conf"
        store = tmp_path / f"store-{port}"
        config.write_text(f'host: 127.0.0.1\nport: {port}\njetstream {{ store_dir: "{store}" }}\n{extra}\n')
        proc = await asyncio.create_subprocess_exec(
            find_nats_server(), "-c", str(config), stderr=asyncio.subprocess.PIPE
        )
        procs.append(proc)
        assert proc.stderr is not None
        async with asyncio.timeout(10):
            while True:
                line = await proc.stderr.readline()
                assert line, "nats-server exited during start"
                if b"Server is ready" in line:
                    return port

    yield start
    for proc in procs:
        proc.terminate()
        await proc.wait()


async def roundtrip(transport: JetStreamTransport) -> None:
    async with transport:
        event = Event.new("sec.x", b"1")
        await transport.publish([event])
        sub = await transport.subscribe("sec.x", "g")
        got = await anext(sub.__aiter__())
        assert got.event is not None and got.event.id == event.id
        await got.ack()


async def test_user_and_password(secured_server: Callable[[str], object]) -> None:
    port = await secured_server('authorization { user: "app", password: "s3cret" }')  # type: ignore[misc]
    await roundtrip(JetStreamTransport(f"nats://127.0.0.1:{port}", user="app", password="s3cret"))
    wrong = JetStreamTransport(f"nats://127.0.0.1:{port}", user="app", password="nope", connect_timeout=1)
    with pytest.raises(TransportError, match=r"cannot connect.*(?i:authorization violation)"):
        await wrong.start()


async def test_token(secured_server: Callable[[str], object]) -> None:
    port = await secured_server('authorization { token: "t0ken" }')  # type: ignore[misc]
    await roundtrip(JetStreamTransport(f"nats://127.0.0.1:{port}", token="t0ken"))
    with pytest.raises(TransportError, match="cannot connect"):
        await JetStreamTransport(f"nats://127.0.0.1:{port}", connect_timeout=1).start()


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls(secured_server: Callable[[str], object], self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    port = await secured_server(f'tls {{ cert_file: "{cert}"\n key_file: "{key}" }}')  # type: ignore[misc]
    context = ssl.create_default_context(cafile=str(cert))
    await roundtrip(JetStreamTransport(f"tls://127.0.0.1:{port}", tls=context))
    untrusted = ssl.create_default_context()  # system CAs: the self-signed cert is refused
    with pytest.raises(TransportError, match="cannot connect") as info:
        await JetStreamTransport(f"tls://127.0.0.1:{port}", tls=untrusted, connect_timeout=1).start()
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
