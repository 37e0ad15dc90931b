"""For store authors: the idempotency-store and dead-letter-store protocols, their
records, and the in-memory stores. (JetStream's stores are in :mod:`crosswire.jetstream`.)
"""

from __future__ import annotations

from ._deadletter import AttemptRecord as AttemptRecord
from ._deadletter import DeadLetter as DeadLetter
from ._deadletter import DeadLetterStore as DeadLetterStore
from ._deadletter import MemoryDeadLetterStore as MemoryDeadLetterStore
from ._deadletter import ReplayRecord as ReplayRecord
from ._policies.dedup import Claim as Claim
from ._policies.dedup import IdempotencyStore as IdempotencyStore
from ._policies.dedup import IdempotencyStoreStatistics as IdempotencyStoreStatistics
from ._policies.dedup import MemoryIdempotencyStore as MemoryIdempotencyStore

__all__ = [
    "AttemptRecord",
    "Claim",
    "DeadLetter",
    "DeadLetterStore",
    "IdempotencyStore",
    "IdempotencyStoreStatistics",
    "MemoryDeadLetterStore",
    "MemoryIdempotencyStore",
    "ReplayRecord",
]
