"""Stopping child processes the same way everywhere (embedded nats-server, workers)."""

from __future__ import annotations

import asyncio
import contextlib
import signal

__all__ = ["kill_process", "stop_process"]


async def kill_process(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL now and reap. A process that already exited is left alone."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def stop_process(proc: asyncio.subprocess.Process, grace: float) -> bool:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL.

    :returns: whether the process had to be killed.
    """
    if proc.returncode is not None:
        return False
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), timeout=grace)
    except TimeoutError:
        await kill_process(proc)
        return True
    return False
