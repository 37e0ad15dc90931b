"""One embedded broker per data directory.

The transport that starts the embedded server of a data directory holds an exclusive
lock on ``<data_dir>/broker.lock`` for as long as it owns it, and writes where the
server listens to ``<data_dir>/broker.json``. Another transport on the same data
directory (a second node, ``crosswire submit``) finds the lock held and *joins* that
server instead of starting a second one on the same JetStream files. If the owner
goes away, whoever takes the lock next starts the server again, on the same store
and the same port.

The owner supervises its server: if it exits, the owner logs it, starts it again on
the same store and port, and the clients reconnect (the node is not ready meanwhile,
since its connections are down).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from pathlib import Path

from ..._exceptions import ConfigurationError, TransportError
from .embedded import EmbeddedServer

__all__ = ["BrokerLock", "EmbeddedBroker", "read_broker"]

log = logging.getLogger("crosswire.jetstream")

LOCK_FILE = "broker.lock"
BROKER_FILE = "broker.json"


class BrokerLock:
    """The exclusive right to run the embedded server of ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it (never blocks).

        :raises ConfigurationError: the data dir cannot be created or opened.
        """
        if self._fd is not None:
            return True
        try:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigurationError(f"cannot use data dir {str(self.data_dir)!r}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def publish(self, url: str, port: int) -> None:
        """Say where the server of this data dir listens (only while holding the lock)."""
        path = self.data_dir / BROKER_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": url, "port": port, "pid": os.getpid()}))
        os.chmod(tmp, 0o600)
        tmp.replace(path)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def read_broker(data_dir: Path) -> tuple[str, int, int] | None:
    """``(url, port, owner pid)`` from ``broker.json``, or ``None``."""
    try:
        info = json.loads((data_dir / BROKER_FILE).read_text())
        return str(info["url"]), int(info["port"]), int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class EmbeddedBroker:
    """The embedded server of a data dir: owned (started and supervised here) or joined."""

    def __init__(self, data_dir: str | os.PathLike[str], *, fsync: bool = False, check_every: float = 0.5) -> None:
        self.data_dir = Path(data_dir)
        self.fsync = fsync
        self.check_every = check_every
        self.server: EmbeddedServer | None = None  # when owned
        self.lock = BrokerLock(self.data_dir)
        self.restarts = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def owner(self) -> bool:
        return self.lock.held

    async def start(self) -> str:
        """Own or join the data dir's server; its URL.

        :raises TransportError: the server could not be started, or another process
            holds the data dir but says nowhere where its server listens.
        """
        if self.lock.try_acquire():
            url = await self._own()
        else:
            found = read_broker(self.data_dir)
            if found is None:
                raise TransportError(
                    f"data dir {str(self.data_dir)!r} is in use by another process, which has not said where its "
                    f"broker listens ({BROKER_FILE}); try again, or use another --data-dir"
                )
            url, _, pid = found
            log.info("joining the embedded broker of process %d on data dir %s (%s)", pid, self.data_dir, url)
        self._task = asyncio.create_task(self._supervise(), name=f"crosswire-broker-{self.data_dir}")
        return url

    async def _own(self) -> str:
        found = read_broker(self.data_dir)
        port = found[1] if found is not None else None  # the same port: clients of the last owner reconnect
        server = EmbeddedServer(self.data_dir, fsync=self.fsync, port=port)
        try:
            await server.start()
        except TransportError:
            if port is None:
                self.lock.release()
                raise
            log.warning("port %d of the previous broker on %s is taken; using another", port, self.data_dir)
            server = EmbeddedServer(self.data_dir, fsync=self.fsync)
            try:
                await server.start()
            except BaseException:
                self.lock.release()
                raise
        self.server = server
        self.lock.publish(server.url, server.port)
        return server.url

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(self.check_every)
            try:
                if self.owner and self.server is not None:
                    if not self.server.running:
                        log.error(
                            "the embedded nats-server of %s exited (%s); starting it again on the same store and port",
                            self.data_dir,
                            self.server.log_tail().splitlines()[-1:] or "no log",
                        )
                        await self.server.start()
                        self.restarts += 1
                        log.warning("the embedded nats-server of %s is back on %s", self.data_dir, self.server.url)
                elif self.lock.try_acquire():
                    log.warning("the process that ran the broker of %s is gone: running it here", self.data_dir)
                    await self._own()
                    self.restarts += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("embedded broker of %s: cannot start it again yet: %s", self.data_dir, exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.server is not None and self.owner:
            await self.server.stop()  # kept, not running: ``transport.server.running`` says so
        self.lock.release()
