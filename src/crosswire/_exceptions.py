"""The one rooted tree of crosswire's errors.

::

    CrosswireError
    ├── DecodeError                 bytes that are not a valid envelope / frame
    │   ├── EnvelopeDecodeError     .code is one of spec/envelope.md's decode codes
    │   └── FrameDecodeError        .outcome is one of spec/protocol.md's outcomes
    ├── ProtocolError               a worker broke the protocol (handshake, sequencing)
    │   └── VersionMismatchError    no protocol version both sides speak
    ├── ConfigurationError          bad arguments to App / Node / a policy, found at setup
    ├── BackpressureError           submit could not be accepted in time (queue full)
    ├── ClosedError                 the node or transport is not running
    ├── DrainTimeoutError           drain did not finish within its deadline
    └── TransportError              the transport failed (broker unreachable, publish lost)

Handlers signal outcomes with the exceptions in :mod:`crosswire._signals`
(``RetryLater``, ``Reject``, ``Fail``); those are not errors of crosswire itself and do
not derive from :class:`CrosswireError`.
"""

from __future__ import annotations

__all__ = [
    "BackpressureError",
    "ClosedError",
    "ConfigurationError",
    "CrosswireError",
    "DecodeError",
    "DrainTimeoutError",
    "EnvelopeDecodeError",
    "FrameDecodeError",
    "PayloadTooLargeError",
    "ProtocolError",
    "TransportError",
    "VersionMismatchError",
]


class CrosswireError(Exception):
    """Base of every error crosswire raises."""


class DecodeError(CrosswireError):
    """Bytes from outside could not be decoded."""


class EnvelopeDecodeError(DecodeError):
    """An envelope or error envelope failed to decode.

    ``code`` is one of: ``truncated``, ``malformed``, ``wrong_type``, ``missing_field``,
    ``invalid_value``, ``unsupported_version``, ``invalid_extension_name``, ``too_large``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class FrameDecodeError(DecodeError):
    """A worker-protocol frame failed to decode.

    ``outcome`` is one of ``too_large``, ``empty``, ``malformed``, ``invalid``.
    """

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(f"{outcome}: {message}")
        self.outcome = outcome
        self.message = message


class ProtocolError(CrosswireError):
    """A worker sent something the protocol does not allow at that point."""


class VersionMismatchError(ProtocolError):
    """The worker and the node share no protocol version."""


class ConfigurationError(CrosswireError, ValueError):
    """Invalid configuration, reported when the object is built, not when it runs."""


class BackpressureError(CrosswireError):
    """The event was not accepted: the bounded queue stayed full past the timeout.

    Nothing was enqueued; the caller still owns the event and may retry.
    """


class ClosedError(CrosswireError):
    """The node or transport is not accepting work (not started, draining or stopped)."""


class DrainTimeoutError(CrosswireError):
    """Drain missed its deadline; the unfinished deliveries were returned, not acked."""


class TransportError(CrosswireError):
    """The transport failed to publish, consume or settle."""


class PayloadTooLargeError(TransportError):
    """An event, encoded with its headers, is larger than the broker accepts; nothing
    of its batch was sent. ``size`` and ``limit`` are in bytes."""

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit
