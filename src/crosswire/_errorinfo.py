"""The error envelope (spec/errors.md): how a failure crosses every boundary."""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from ._envelope import classify_validation_error  # shared classification of msgspec errors

__all__ = ["ErrorCode", "ErrorInfo", "decode_error_info", "encode_error_info"]


class ErrorCode(enum.StrEnum):
    """The closed set of error codes shared by every runtime."""

    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    FAILED_PRECONDITION = "failed_precondition"
    PERMISSION_DENIED = "permission_denied"
    REJECTED = "rejected"
    UNIMPLEMENTED = "unimplemented"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    CANCELLED = "cancelled"
    WORKER_LOST = "worker_lost"
    HANDLER_ERROR = "handler_error"
    INTERNAL = "internal"

    @property
    def default_retryable(self) -> bool:
        """Whether an error with this code is retryable when the sender did not say."""
        return self not in _PERMANENT


_PERMANENT = frozenset(
    {
        ErrorCode.INVALID_ARGUMENT,
        ErrorCode.NOT_FOUND,
        ErrorCode.FAILED_PRECONDITION,
        ErrorCode.PERMISSION_DENIED,
        ErrorCode.REJECTED,
        ErrorCode.UNIMPLEMENTED,
    }
)

Runtime = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class ErrorInfo(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True):
    """Why an attempt failed, as data. Immutable; safe to share between tasks."""

    code: ErrorCode
    message: Annotated[str, msgspec.Meta(max_length=4096)]
    retryable: bool
    retry_after: Annotated[float, msgspec.Meta(ge=0)] | None = None
    details: Annotated[dict[str, str], msgspec.Meta(max_length=32)] = {}
    runtime: Runtime

    def __post_init__(self) -> None:
        if len(self.details) > 1:
            # canonical form: keys sorted by their bytes, so every SDK encodes alike
            keys = list(self.details)
            if keys != sorted(keys, key=str.encode):
                ordered = {k: self.details[k] for k in sorted(keys, key=str.encode)}
                msgspec.structs.force_setattr(self, "details", ordered)

    @classmethod
    def of(
        cls,
        code: ErrorCode,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
        details: dict[str, str] | None = None,
        runtime: str = "python",
    ) -> ErrorInfo:
        """Build an error envelope; ``retryable`` defaults to the code's default."""
        return cls(
            code=code,
            message=message[:4096],
            retryable=code.default_retryable if retryable is None else retryable,
            retry_after=retry_after,
            details=details or {},
            runtime=runtime,
        )


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ErrorInfo)


def encode_error_info(info: ErrorInfo) -> bytes:
    """Encode an error envelope to its canonical MessagePack bytes."""
    return _encoder.encode(info)


def decode_error_info(data: bytes) -> ErrorInfo:
    """Decode an error envelope.

    :raises EnvelopeDecodeError: with a code from spec/envelope.md's table.
    """
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise classify_validation_error(exc) from None
