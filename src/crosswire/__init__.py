"""crosswire: compose asynchronous event handlers across Python, Go and Rust.

The public API is what ``__all__`` lists; everything in ``crosswire._*`` modules is
private and may change.
"""

from ._app import App as App
from ._policies.breaker import Breaker as Breaker
from ._policies.breaker import BreakerState as BreakerState
from ._deadletter import AttemptRecord as AttemptRecord
from ._deadletter import DeadLetter as DeadLetter
from ._deadletter import DeadLetterStore as DeadLetterStore
from ._deadletter import MemoryDeadLetterStore as MemoryDeadLetterStore
from ._deadletter import ReplayRecord as ReplayRecord
from ._policies.dedup import Claim as Claim
from ._policies.dedup import IdempotencyStore as IdempotencyStore
from ._policies.dedup import MemoryIdempotencyStore as MemoryIdempotencyStore
from ._envelope import Event as Event
from ._envelope import decode_event as decode_event
from ._envelope import encode_event as encode_event
from ._envelope import event_from_json as event_from_json
from ._envelope import event_to_json as event_to_json
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
from ._exceptions import ProtocolError as ProtocolError
from ._exceptions import TransportError as TransportError
from ._exceptions import VersionMismatchError as VersionMismatchError
from ._lifecycle import State as State
from ._transports.memory import MemoryTransport as MemoryTransport
from ._metrics import metrics_registry as metrics_registry
from ._node import DrainReport as DrainReport
from ._node import Node as Node
from ._policies.retry import Retry as Retry
from ._policies.retry import RetryPolicy as RetryPolicy
from ._signals import Fail as Fail
from ._signals import Reject as Reject
from ._signals import RetryLater as RetryLater
from ._transports.base import Delivery as Delivery
from ._transports.base import Features as Features
from ._transports.base import Subscription as Subscription
from ._transports.base import Transport as Transport


def __getattr__(name: str) -> object:
    # The JetStream transport pulls in nats-py; import it only when asked for.
    if name == "JetStreamTransport":
        from .jetstream import JetStreamTransport

        return JetStreamTransport
    raise AttributeError(f"module 'crosswire' has no attribute {name!r}")


__all__ = [
    "App",
    "AttemptRecord",
    "BackpressureError",
    "Breaker",
    "BreakerState",
    "Claim",
    "ClosedError",
    "ConfigurationError",
    "CrosswireError",
    "DeadLetter",
    "DeadLetterStore",
    "DecodeError",
    "Delivery",
    "DrainReport",
    "DrainTimeoutError",
    "EnvelopeDecodeError",
    "ErrorCode",
    "ErrorInfo",
    "Event",
    "Fail",
    "Features",
    "FrameDecodeError",
    "IdempotencyStore",
    "JetStreamTransport",
    "MemoryDeadLetterStore",
    "MemoryIdempotencyStore",
    "MemoryTransport",
    "Node",
    "ProtocolError",
    "Reject",
    "ReplayRecord",
    "Retry",
    "RetryLater",
    "RetryPolicy",
    "State",
    "Subscription",
    "Transport",
    "TransportError",
    "VersionMismatchError",
    "decode_event",
    "encode_event",
    "event_from_json",
    "event_to_json",
    "metrics_registry",
]

__version__ = "0.1.0"
