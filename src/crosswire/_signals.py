"""Exceptions a handler raises on purpose to say how its attempt ended.

They are turned into error envelopes at the adapter; none of them crosses a
boundary as an object.

- ``RetryLater(after=2.0)`` — try again, no sooner than ``after`` seconds.
- ``Reject("reason")`` — never retry; dead-letter with code ``rejected``.
- ``Fail(ErrorCode.NOT_FOUND, "no such sku")`` — any code, retryable by the code's
  default unless said otherwise.

Any other exception becomes ``handler_error`` (retryable).
"""

from __future__ import annotations

from ._errorinfo import ErrorCode, ErrorInfo

__all__ = ["Fail", "Reject", "RetryLater", "error_info_from_exception"]


class Fail(Exception):
    """End the attempt with an explicit error envelope."""

    def __init__(
        self,
        code: ErrorCode,
        message: str = "",
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or code.value)
        self.info = ErrorInfo.of(code, message, retryable=retryable, retry_after=retry_after, details=details)


class RetryLater(Fail):
    """Retry this event after ``after`` seconds (at least)."""

    def __init__(self, after: float = 0.0, reason: str = "retry requested by handler") -> None:
        if after < 0:
            raise ValueError("after must be >= 0")
        super().__init__(ErrorCode.UNAVAILABLE, reason, retryable=True, retry_after=after)


class Reject(Fail):
    """Give up on this event now: it is dead-lettered with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(ErrorCode.REJECTED, reason, retryable=False)


def error_info_from_exception(exc: BaseException) -> ErrorInfo:
    """The error envelope for an exception raised by handler code."""
    if isinstance(exc, Fail):
        return exc.info
    if isinstance(exc, TimeoutError):
        return ErrorInfo.of(ErrorCode.TIMEOUT, f"handler raised TimeoutError: {exc}")
    return ErrorInfo.of(ErrorCode.HANDLER_ERROR, f"{type(exc).__name__}: {exc}")
