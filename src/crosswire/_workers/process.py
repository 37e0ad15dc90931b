"""Child processes, started and stopped the same way everywhere (worker processes and
the embedded nats-server).

:class:`ChildProcess` spawns a command with stdin closed and its stdout/stderr read
line by line into callbacks (lines longer than the reader's limit are cut, never
buffered without bound). The two pipe readers belong to it: :meth:`ChildProcess.stop`
and :meth:`ChildProcess.kill` reap the process, then wait (bounded) for the readers
to finish what the process wrote. A reader that fails is logged, not swallowed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from .._exceptions import ProtocolError

__all__ = ["ChildProcess", "LineSink", "WorkerProcess", "descends_from", "kill_process", "stop_process"]

_log = logging.getLogger("crosswire.process")

#: Called with one decoded output line (trailing whitespace stripped).
LineSink = Callable[[str], None]

#: The longest line handed on whole; longer lines arrive in pieces of this size.
MAX_LINE = 64 * 1024


def _send(proc: asyncio.subprocess.Process, signum: int, group: bool) -> None:
    """Send ``signum`` to the process or, with ``group`` (it leads its own process group),
    to every process in that group: a wrapper script's children too, even once the
    wrapper itself has exited."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(proc.pid, signum)
        elif proc.returncode is None:
            proc.send_signal(signum)


async def kill_process(proc: asyncio.subprocess.Process, *, group: bool = False) -> None:
    """SIGKILL now (the whole process group with ``group``) and reap. A process that
    already exited is left alone; with ``group``, what is left of its group is killed."""
    if group or proc.returncode is None:
        _send(proc, signal.SIGKILL, group)
    await proc.wait()


async def stop_process(proc: asyncio.subprocess.Process, grace: float, *, group: bool = False) -> bool:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL (the whole process group with
    ``group``).

    :returns: whether the process had to be killed.
    """
    if proc.returncode is not None:
        if group:
            _send(proc, signal.SIGKILL, group)  # strays of a process that is gone
        return False
    _send(proc, signal.SIGTERM, group)
    try:
        await asyncio.wait_for(proc.wait(), timeout=grace)
    except TimeoutError:
        await kill_process(proc, group=group)
        return True
    return False


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, have the kernel SIGTERM the child when the
    process that started it dies (even by SIGKILL), so no orphan outlives its owner."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _before_exec(*, own_group: bool, die_with_parent: bool) -> Callable[[], None] | None:
    """What the child runs before exec, if anything."""
    if not own_group:
        return _die_with_parent if die_with_parent else None

    def setup() -> None:
        os.setpgid(0, 0)
        if die_with_parent:
            _die_with_parent()

    return setup


def descends_from(pid: int, ancestor: int, *, max_depth: int = 32) -> bool:
    """Whether process ``pid`` is ``ancestor`` or one of its descendants (Linux ``/proc``;
    False where that cannot be read)."""
    for _ in range(max_depth):
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            return False
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2 :].split()
        try:
            pid = int(fields[1])
        except (IndexError, ValueError):
            return False
    return False


class ChildProcess:
    """One spawned process and the tasks reading its output. Build with :meth:`spawn`."""

    def __init__(
        self, proc: asyncio.subprocess.Process, readers: list[asyncio.Task[None]], *, group: bool = False
    ) -> None:
        self._proc = proc
        self._readers = readers
        self._group = group  # it leads its own process group: signal all of it

    @classmethod
    async def spawn(
        cls,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        on_stdout: LineSink | None = None,
        on_stderr: LineSink | None = None,
        new_session: bool = False,
        process_group: bool = False,
        die_with_parent: bool = False,
    ) -> ChildProcess:
        """Start ``argv``. A stream without a sink goes to ``/dev/null``.

        :param new_session: start in a new session, so a Ctrl-C aimed at the parent's
            process group does not reach the child first; :meth:`signal`, :meth:`stop`
            and :meth:`kill` then reach the child's whole process group.
        :param process_group: the same, but in a new process group of this session: on
            Linux a new session is also a new scheduler autogroup, which slows every
            round trip with a child that answers requests (measured: a third fewer
            1-in-flight round trips with a worker).
        :param die_with_parent: on Linux, the child gets SIGTERM when this process dies.
        :raises OSError: the command could not be started.
        """
        pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        group = process_group and not new_session
        # asyncio's own loops take process_group; uvloop's takes no such argument at
        # all, so there the child calls setpgid itself before exec.
        native_group = group and isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop)
        options: dict[str, Any] = {"process_group": 0} if native_group else {}
        before_exec = _before_exec(own_group=group and not native_group, die_with_parent=die_with_parent)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=null,
            stdout=pipe if on_stdout is not None else null,
            stderr=pipe if on_stderr is not None else null,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=new_session,
            preexec_fn=before_exec,
            **options,
        )
        readers: list[asyncio.Task[None]] = []
        for stream, sink in ((proc.stdout, on_stdout), (proc.stderr, on_stderr)):
            if stream is not None and sink is not None:
                task = asyncio.create_task(_read_lines(stream, sink), name=f"pipe:{proc.pid}")
                task.add_done_callback(_log_failure)
                readers.append(task)
        return cls(proc, readers, group=new_session or process_group)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def wait(self) -> int:
        """Wait for the process to exit; its exit status."""
        return await self._proc.wait()

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process (to its whole group if it leads one); nothing
        if it is gone."""
        _send(self._proc, signum, self._group)

    async def stop(self, grace: float) -> bool:
        """SIGTERM, SIGKILL after ``grace`` s, then let the readers finish.

        :returns: whether the process had to be killed.
        """
        killed = await stop_process(self._proc, grace, group=self._group)
        await self.finish_output()
        return killed

    async def kill(self) -> None:
        """SIGKILL now, reap, and let the readers finish. Idempotent."""
        await kill_process(self._proc, group=self._group)
        await self.finish_output()

    async def finish_output(self, timeout: float = 1.0) -> None:
        """Wait up to ``timeout`` s for the readers to reach the end of the output, then
        cancel what is left (a grandchild may hold the pipe open)."""
        readers = [t for t in self._readers if not t.done()]
        if readers:
            await asyncio.wait(readers, timeout=timeout)
        for task in readers:
            if not task.done():
                task.cancel()
        for task in readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def describe_exit(self) -> str:
        """``process N exited with code C`` / ``was killed by signal S``; empty if running."""
        code = self._proc.returncode
        if code is None:
            return ""
        what = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return f"process {self._proc.pid} {what}"


async def _read_lines(stream: asyncio.StreamReader, sink: LineSink) -> None:
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # longer than the stream limit: hand on a piece
            line = await stream.read(MAX_LINE)
        if not line:
            return
        sink(line.decode("utf-8", "replace").rstrip())


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("reading a child process's output failed", exc_info=task.exception())


class WorkerProcess:
    """The process of one worker: spawned with ``CROSSWIRE_SOCKET`` (and
    ``CROSSWIRE_TOKEN``) in its environment, its output forwarded line by line to
    ``logger`` (stdout at INFO, stderr at WARNING, the last stderr lines kept for error
    messages). With ``command=None`` (an external worker) every method is a no-op and
    nothing is ever spawned.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str] | None,
        *,
        env: Mapping[str, str],
        cwd: str | None,
        logger: logging.Logger,
    ) -> None:
        self.name = name
        self.command = tuple(command) if command is not None else None
        self.env = dict(env)
        self.cwd = cwd
        self._logger = logger
        self._child: ChildProcess | None = None
        self._spawned = asyncio.Event()  # clear while spawn() runs
        self._spawned.set()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=8)

    @property
    def spawns(self) -> bool:
        """Whether this worker is spawned by the node (it has a command)."""
        return self.command is not None

    @property
    def spawned(self) -> bool:
        """Whether a process was started (it may have exited since)."""
        return self._child is not None

    @property
    def pid(self) -> int | None:
        """The pid of the last process started, running or not."""
        return self._child.pid if self._child is not None else None

    @property
    def returncode(self) -> int | None:
        return self._child.returncode if self._child is not None else None

    @property
    def live_pid(self) -> int | None:
        """The pid of the process if it is still running."""
        child = self._child
        return child.pid if child is not None and child.returncode is None else None

    async def spawn(self, socket_path: str, token: str | None = None) -> None:
        """Start the command (a no-op for an external worker).

        :raises ProtocolError: the command could not be started.
        """
        if self.command is None:
            return
        env = {**os.environ, **self.env, "CROSSWIRE_SOCKET": socket_path}
        if token is not None:
            env["CROSSWIRE_TOKEN"] = token
        else:
            env.pop("CROSSWIRE_TOKEN", None)
        self._stderr_tail.clear()
        self._spawned.clear()  # a hello may arrive before spawn() returns: see settled()
        try:
            child = await ChildProcess.spawn(
                self.command,
                env=env,
                cwd=self.cwd,
                on_stdout=self._on_stdout,
                on_stderr=self._on_stderr,
                # its own process group: stop and kill (at ready_timeout, a hang, close)
                # reach a wrapper script's children, not only the wrapper; not its own
                # session, which would cost every round trip (see ChildProcess.spawn)
                process_group=True,
            )
        except OSError as exc:
            raise ProtocolError(f"worker {self.name!r}: cannot start {self.command[0]!r}: {exc}") from exc
        finally:
            self._spawned.set()
        self._child = child

    async def settled(self) -> None:
        """Wait until a spawn in progress has returned (its pid is then :attr:`live_pid`)."""
        await self._spawned.wait()

    def _on_stdout(self, text: str) -> None:
        self._logger.info("%s", text, extra={"worker_pid": self.pid})

    def _on_stderr(self, text: str) -> None:
        self._stderr_tail.append(text)
        self._logger.warning("%s", text, extra={"worker_pid": self.pid})

    async def until_attached(self, attached: asyncio.Future[Any]) -> bool:
        """Wait until ``attached`` completes or the process exits; whether it completed."""
        await self._until(attached)
        return attached.done()

    async def until_closed(self, closed_waiter: Awaitable[Any]) -> None:
        """Wait until ``closed_waiter`` (the connection's end) completes or the process exits."""
        closed = asyncio.ensure_future(closed_waiter)
        try:
            await self._until(closed)
        finally:
            closed.cancel()

    async def _until(self, fut: asyncio.Future[Any]) -> None:
        child = self._child
        if child is None or child.returncode is not None:
            if child is None:
                await asyncio.wait([fut])
            return
        exited = asyncio.ensure_future(child.wait())
        try:
            await asyncio.wait([fut, exited], return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()

    async def wait_exit(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the process to exit on its own."""
        child = self._child
        if child is not None and child.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.wait(), timeout)

    async def wait(self) -> None:
        """Wait for the process to exit (returns at once for an external worker)."""
        if self._child is not None:
            await self._child.wait()

    async def stop(self, grace: float) -> bool:
        """SIGTERM, then SIGKILL after ``grace`` s; whether it had to be killed."""
        return await self._child.stop(grace) if self._child is not None else False

    async def kill(self) -> None:
        """SIGKILL and reap, letting the log forwarders finish."""
        if self._child is not None:
            await self._child.kill()

    def exit_text(self) -> str:
        """How the process ended, with its last stderr line; empty while it runs."""
        child = self._child
        if child is None or child.returncode is None:
            return ""
        tail = f": {self._stderr_tail[-1]}" if self._stderr_tail else ""
        return f"{child.describe_exit()}{tail}"
