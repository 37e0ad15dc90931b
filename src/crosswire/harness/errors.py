"""The harness's own error."""

from __future__ import annotations

from .._exceptions import CrosswireError

__all__ = ["HarnessError"]


class HarnessError(CrosswireError):
    """The harness could not run the scenario (the node did not start, ...)."""
