"""Import the user's app: ``module:attr`` (attr defaults to ``app``)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from .._app import App
from .._exceptions import ConfigurationError
from .._function import payload_type

__all__ = ["load_app", "payload_types"]


def load_app(spec: str) -> App:
    """Import ``module:attr`` (attr defaults to ``app``), the current directory first.

    :raises ConfigurationError: the module does not import, has no such attribute, or
        it is not a :class:`crosswire.App` (one line naming the cause).
    """
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ConfigurationError(f"expected MODULE:APP, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: any error at import is theirs to see
        raise ConfigurationError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    try:
        app = getattr(module, attr or "app")
    except AttributeError:
        raise ConfigurationError(f"module {module_name!r} has no attribute {attr or 'app'!r}") from None
    if not isinstance(app, App):
        raise ConfigurationError(f"{spec} is a {type(app).__name__}, not a crosswire.App")
    return app


def _matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)


def payload_types(app: App) -> Callable[[str], Any]:
    """Event type → the payload type of the first Python handler it routes to."""

    def lookup(event_type: str) -> Any:
        for config in app.handlers:
            if _matches(config.pattern, event_type):
                return payload_type(config.fn)
        return None

    return lookup
