"""Replacing a hung worker without a gap in service (spec/protocol.md, "Deadlines").

A worker whose handler ignores its deadline keeps that delivery's credit: the protocol
lets the node reclaim it only by ending the connection. So when a spawned worker is
declared hung, its pool starts a *replacement* process first, while the hung one keeps
serving with the credit it has left; once the replacement is ready, new deliveries go to
it and the hung process is *retired* here: it gets nothing new, the deliveries the node
still waits for on it may finish (their results count), and once only fenced deliveries
(those the node gave up on) are left — or it dies — it is killed. What it still had then
is settled as ``worker_lost``; a fenced delivery's caller is gone, so that settles nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .._errorinfo import ErrorCode
from .._tasks import first_of
from .process import WorkerProcess
from .session import Session

__all__ = ["retire"]


async def _quiet_after(switched: asyncio.Event, session: Session, untimed_bound: float) -> None:
    await switched.wait()
    await session.until_quiet(untimed_bound)


async def retire(
    session: Session,
    runner: WorkerProcess,
    switched: asyncio.Event,
    *,
    untimed_bound: float,
    gone: Callable[[Session], None],
    stopping: Callable[[], bool],
    logger: logging.Logger,
) -> None:
    """Retire ``session`` (and its process ``runner``) once ``switched`` is set (new
    deliveries go elsewhere) and it has nothing out but fenced deliveries; or at once if
    its connection closes or its process exits. A delivery without a deadline is waited
    for at most ``untimed_bound`` s. ``gone(session)`` is called first, so a pool still
    routing to it (it died before its replacement was ready) stops."""
    reason = session.hung or "replaced"
    pid = runner.live_pid
    try:
        await first_of(session.conn.wait_closed(), runner.wait(), _quiet_after(switched, session, untimed_bound))
    finally:
        gone(session)
        fenced = session.in_flight - session.live
        session.conn.fail(reason, log=False)  # say why, best effort
        await session.close(reason)
        await runner.kill()
        code = ErrorCode.CANCELLED if stopping() else ErrorCode.WORKER_LOST
        left = session.live
        session.settle_lost(code, f"its process was retired ({reason})")
        logger.warning(
            "retired worker process %s: %d fenced deliveries dropped, %d unfinished settled as %s",
            pid,
            fenced,
            left,
            code.value,
        )
