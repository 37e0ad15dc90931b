"""The Python worker SDK's old signal names, kept for a while: raise
:class:`~crosswire.RetryLater`, :class:`~crosswire.Reject` or :class:`~crosswire.Fail`
instead (the same classes in-process and in a worker)."""

from __future__ import annotations

import warnings

from .._errorinfo import ErrorCode
from .._signals import Fail

__all__ = ["Permanent", "Retryable"]


def _code(code: ErrorCode | str) -> ErrorCode:
    try:
        return ErrorCode(code)
    except ValueError:
        known = ", ".join(c.value for c in ErrorCode)
        raise ValueError(f"unknown error code {code!r} (known: {known})") from None


class Retryable(Fail):
    """Deprecated: raise :class:`RetryLater`, or :class:`Fail` with ``retryable=True``."""

    def __init__(
        self,
        code: ErrorCode | str = ErrorCode.UNAVAILABLE,
        message: str = "",
        *,
        after: float | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        warnings.warn(
            "crosswire.worker.Retryable is deprecated: raise RetryLater or Fail(code, retryable=True)",
            DeprecationWarning,
            stacklevel=2,
        )
        if after is not None and after < 0:
            raise ValueError("after must be >= 0")
        super().__init__(_code(code), message, retryable=True, retry_after=after, details=details)


class Permanent(Fail):
    """Deprecated: raise :class:`Reject`, or :class:`Fail` with ``retryable=False``."""

    def __init__(
        self,
        code: ErrorCode | str = ErrorCode.INVALID_ARGUMENT,
        message: str = "",
        *,
        details: dict[str, str] | None = None,
    ) -> None:
        warnings.warn(
            "crosswire.worker.Permanent is deprecated: raise Reject or Fail(code, retryable=False)",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(_code(code), message, retryable=False, details=details)
