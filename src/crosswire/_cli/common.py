"""What every ``crosswire`` subcommand shares: user errors, connection options, loading
the app, building the transport, logging."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import ssl
import sys
import traceback
from pathlib import Path
from typing import Any

from .._app import App

__all__ = [
    "SERVER_FILE",
    "UserError",
    "configure_logging",
    "connection_args",
    "load_app",
    "make_transport",
    "server_file",
]

SERVER_FILE = "server.json"  # written in the data dir by `crosswire run` with an embedded server


class UserError(Exception):
    """A mistake of the caller: printed as one line, exit code 3."""


def connection_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where events live")
    g.add_argument(
        "--nats",
        metavar="URL",
        action="append",
        help="NATS server or cluster URL (repeat for several seeds); default: the embedded local server",
    )
    g.add_argument(
        "--data-dir",
        default=os.environ.get("CROSSWIRE_DATA_DIR", ".crosswire"),
        help="embedded server's JetStream data directory (default: %(default)s)",
    )
    g.add_argument("--stream", default="CROSSWIRE", help="JetStream stream name (default: %(default)s)")
    g.add_argument("--user", help="NATS user name")
    g.add_argument(
        "--password",
        default=os.environ.get("CROSSWIRE_NATS_PASSWORD"),
        help="NATS password (or $CROSSWIRE_NATS_PASSWORD)",
    )
    g.add_argument(
        "--token", default=os.environ.get("CROSSWIRE_NATS_TOKEN"), help="NATS token (or $CROSSWIRE_NATS_TOKEN)"
    )
    g.add_argument("--creds", metavar="FILE", help="NATS credentials file (.creds)")
    g.add_argument("--nkey", metavar="FILE", help="NKEYS seed file")
    g.add_argument("--tls-ca", metavar="FILE", help="CA bundle to verify the server")
    g.add_argument("--tls-cert", metavar="FILE", help="client certificate (mutual TLS)")
    g.add_argument("--tls-key", metavar="FILE", help="client key (mutual TLS)")


def load_app(spec: str) -> App:
    """Import ``module:attr`` (attr defaults to ``app``) from the current directory.

    :raises UserError: the module is missing or fails on import (a syntax error, a
        dependency that is not installed, an exception while it runs), or ``attr`` is
        missing or not an :class:`App`. The message is one line naming the module and
        the cause; the original exception is chained for ``--log-level DEBUG``.
    """
    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if not module_name:
        raise UserError(f"expected MODULE:APP, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == module_name or module_name.startswith(f"{missing}."):
            raise UserError(f"cannot import module {module_name!r}: {exc}") from None
        raise UserError(
            f"cannot import module {module_name!r}: it imports {missing!r}, which is not installed{_where(exc)}"
        ) from exc
    except SyntaxError as exc:  # IndentationError too
        raise UserError(
            f"cannot import module {module_name!r}: {type(exc).__name__} at {exc.filename}:{exc.lineno}: {exc.msg}"
        ) from exc
    except Exception as exc:
        raise UserError(
            f"cannot import module {module_name!r}: {type(exc).__name__}: {_one_line(exc)}{_where(exc)}"
        ) from exc
    try:
        app = getattr(module, attr)
    except AttributeError:
        raise UserError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(app, App):
        raise UserError(f"{spec} is a {type(app).__name__}, not a crosswire.App")
    return app


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + "..." if len(text) > 300 else text


def _where(exc: BaseException) -> str:
    """`` (at file:line)`` of the innermost frame that raised ``exc``, or ``""``."""
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if not f.filename.startswith("<frozen ")]
    if not user:
        return ""
    frame = user[-1]
    return f" (at {frame.filename}:{frame.lineno})"


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not (args.tls_ca or args.tls_cert):
        return None
    ctx = ssl.create_default_context(cafile=args.tls_ca)
    if args.tls_cert:
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    return ctx


def server_file(data_dir: str) -> Path:
    return Path(data_dir) / SERVER_FILE


def _running_embedded_url(data_dir: str) -> str | None:
    """The URL of an embedded server a `crosswire run` started on this data dir, if alive."""
    path = server_file(data_dir)
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if info.get("memory"):
        raise UserError(
            f"the node running on {data_dir} (app {info.get('app')!r}, pid {info['pid']}) uses the in-process "
            "memory transport: no other process can reach its events. Run it without --memory, "
            "or submit from inside the app"
        )
    try:
        return str(info["url"])
    except KeyError:
        return None


def make_transport(args: argparse.Namespace, *, for_run: bool = False, read_only: bool = False) -> Any:
    from ..jetstream import JetStreamTransport, parse_start

    url: Any = args.nats
    if url is None and not for_run:
        url = _running_embedded_url(args.data_dir)  # share the running node's server
    if isinstance(url, list) and len(url) == 1:
        url = url[0]
    return JetStreamTransport(
        url,
        data_dir=args.data_dir,
        stream=args.stream,
        user=args.user,
        password=args.password,
        token=args.token,
        credentials=args.creds,
        nkeys_seed=args.nkey,
        tls=_tls(args),
        fsync=getattr(args, "fsync", False),
        read_only=read_only,
        **_jetstream_settings(args, parse_start),
    )


def _jetstream_settings(args: argparse.Namespace, parse_start: Any) -> dict[str, Any]:
    """The stream and consumer options of `crosswire run` (see run.py), when given."""
    out: dict[str, Any] = {}
    for option in ("replicas", "max_age", "duplicate_window", "strict_stream", "prefetch_bytes"):
        value = getattr(args, option, None)
        if value is not None:
            out[option] = value
    if getattr(args, "start", None) is not None:
        out["group_start"] = parse_start(args.start)
    return out


def configure_logging(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if as_json
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    try:
        root.setLevel(level.upper())
    except ValueError:
        raise UserError(f"unknown log level {level!r}") from None


#: Fields a JSON line carries when the record has them (worker lines: crosswire._observability.logs).
_LOG_FIELDS = ("event_id", "correlation_id", "trace_id", "span_id", "binding", "attempt", "worker", "runtime", "pid")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _LOG_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        attrs = getattr(record, "attrs", None)  # a worker's own fields (crosswire._observability.logs)
        if isinstance(attrs, dict) and attrs:
            out["attrs"] = attrs
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)
