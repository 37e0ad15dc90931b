"""crosswire: compose asynchronous event handlers across Python, Go and Rust."""

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

__version__ = "0.1.0"
