"""Import the user's app: ``module:attr`` (attr defaults to ``app``)."""

from __future__ import annotations

import importlib
import os
import sys

from .._app import App

__all__ = ["load_app"]


def load_app(spec: str) -> App:
    """Import ``module:attr`` (attr defaults to ``app``), the current directory first."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ValueError(f"expected MODULE:APP, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    app = getattr(module, attr or "app")
    if not isinstance(app, App):
        raise TypeError(f"{spec} is a {type(app).__name__}, not a crosswire.App")
    return app
