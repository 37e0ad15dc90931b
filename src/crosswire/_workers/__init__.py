"""Worker processes: the node's side of spec/protocol.md.

- :mod:`.frames` — the frame codec, no I/O;
- :mod:`.connection` — one framed socket: reading, coalesced writing, heartbeats;
- :mod:`.hub` — the listening socket and the ``hello`` check;
- :mod:`.session` — one worker connection: handshake, credit, results;
- :mod:`.pool` — one supervised worker: restarts, flow control, the handler;
- :mod:`.process` — spawning, log forwarding and stopping child processes;
- :mod:`.spec` — typed options and statistics; :mod:`.tasks` — owned background tasks.

Dependencies point one way: pool → session → connection → frames; pool → hub →
connection; hub knows the pool only as a :class:`~.hub.WorkerSlot`.
"""

from .hub import WorkerHub, WorkerSlot
from .pool import WorkerPool
from .spec import WorkerOptions, WorkerSpec, WorkerState, WorkerStatistics

__all__ = ["WorkerHub", "WorkerOptions", "WorkerPool", "WorkerSlot", "WorkerSpec", "WorkerState", "WorkerStatistics"]
