"""crosswire: compose asynchronous event handlers across Python, Go and Rust.

The public API is what ``__all__`` lists; everything in ``crosswire._*`` modules is
private and may change.
"""

import typing as _typing

from ._app import App as App
from ._app import WorkerOptionArgs as WorkerOptionArgs
from ._binding import BindingStatistics as BindingStatistics
from ._deadletter import AttemptRecord as AttemptRecord
from ._deadletter import DeadLetter as DeadLetter
from ._dispatcher import QueueStatistics as QueueStatistics
from ._envelope import Event as Event
from ._envelope import decode_event as decode_event
from ._envelope import encode_event as encode_event
from ._errorinfo import ErrorCode as ErrorCode
from ._errorinfo import ErrorInfo as ErrorInfo
from ._exceptions import BackpressureError as BackpressureError
from ._exceptions import ClosedError as ClosedError
from ._exceptions import ConfigurationError as ConfigurationError
from ._exceptions import CrosswireError as CrosswireError
from ._exceptions import DecodeError as DecodeError
from ._exceptions import DrainTimeoutError as DrainTimeoutError
from ._exceptions import EnvelopeDecodeError as EnvelopeDecodeError
from ._exceptions import FrameDecodeError as FrameDecodeError
from ._exceptions import PayloadTooLargeError as PayloadTooLargeError
from ._exceptions import ProtocolError as ProtocolError
from ._exceptions import TransportError as TransportError
from ._exceptions import VersionMismatchError as VersionMismatchError
from ._jsonform import event_from_json as event_from_json
from ._jsonform import event_to_json as event_to_json
from ._lifecycle import State as State
from ._node import Node as Node
from ._policies.breaker import Breaker as Breaker
from ._policies.breaker import BreakerState as BreakerState
from ._policies.breaker import BreakerStatistics as BreakerStatistics
from ._policies.dedup import Dedup as Dedup
from ._policies.retry import Retry as Retry
from ._policies.retry import RetryPolicy as RetryPolicy
from ._policies.timeout import Timeout as Timeout
from ._replay import DeadLetters as DeadLetters
from ._replay import ReplayResult as ReplayResult
from ._reports import DrainReport as DrainReport
from ._reports import NodeStatistics as NodeStatistics
from ._signals import Fail as Fail
from ._signals import Reject as Reject
from ._signals import RetryLater as RetryLater
from ._transports.memory import MemoryTransport as MemoryTransport
from ._types import Attempt as Attempt
from ._types import Handler as Handler
from ._types import Layer as Layer
from ._types import Middleware as Middleware
from ._types import Outcome as Outcome
from ._workers.spec import WorkerOptions as WorkerOptions
from ._workers.spec import WorkerStatistics as WorkerStatistics

if _typing.TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .jetstream import JetStreamTransport as JetStreamTransport
else:

    def __getattr__(name: str) -> object:
        # JetStream pulls in nats-py: import it when first asked for (the type checker
        # sees the real class above).
        if name == "JetStreamTransport":
            from .jetstream import JetStreamTransport

            return JetStreamTransport
        raise AttributeError(f"module 'crosswire' has no attribute {name!r}")


def metrics_registry(node: Node) -> "CollectorRegistry":
    """A Prometheus registry holding only ``node``'s metrics, read at scrape time.
    (The exporter is imported here, not on the event path.)"""
    from ._metrics import metrics_registry as build

    return build(node)


__all__ = [
    "App",
    "Attempt",
    "AttemptRecord",
    "BackpressureError",
    "BindingStatistics",
    "Breaker",
    "BreakerState",
    "BreakerStatistics",
    "ClosedError",
    "ConfigurationError",
    "CrosswireError",
    "DeadLetter",
    "DeadLetters",
    "DecodeError",
    "Dedup",
    "DrainReport",
    "DrainTimeoutError",
    "EnvelopeDecodeError",
    "ErrorCode",
    "ErrorInfo",
    "Event",
    "Fail",
    "FrameDecodeError",
    "Handler",
    "JetStreamTransport",
    "Layer",
    "MemoryTransport",
    "Middleware",
    "Node",
    "NodeStatistics",
    "Outcome",
    "PayloadTooLargeError",
    "ProtocolError",
    "QueueStatistics",
    "Reject",
    "ReplayResult",
    "Retry",
    "RetryLater",
    "RetryPolicy",
    "State",
    "Timeout",
    "TransportError",
    "VersionMismatchError",
    "WorkerOptionArgs",
    "WorkerOptions",
    "WorkerStatistics",
    "decode_event",
    "encode_event",
    "event_from_json",
    "event_to_json",
    "metrics_registry",
]

__version__ = "0.1.0"
