"""OTLP export from the standard OpenTelemetry variables (the ``crosswire[otlp]`` extra).

::

    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 crosswire run examples.orders.app:app

- ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is) or ``OTEL_EXPORTER_OTLP_ENDPOINT``
  (``/v1/traces`` appended, for http) — where spans go; ``crosswire run --otlp-endpoint
  URL`` sets the latter;
- ``OTEL_EXPORTER_OTLP_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``:
  ``http/protobuf`` (default) or ``grpc`` (needs ``opentelemetry-exporter-otlp-proto-grpc``);
- ``OTEL_SERVICE_NAME`` (default: the app's name), ``OTEL_RESOURCE_ATTRIBUTES``;
- ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``: no export.

The node is the one exporter: spans its workers' SDKs ship in ``RESULT`` go out through
the same provider, so workers need no configuration at all.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .._exceptions import ConfigurationError

__all__ = ["configure", "configured_endpoint"]

log = logging.getLogger("crosswire.tracing")

_installed: Any = None


def configured_endpoint(environ: dict[str, str] | None = None) -> str | None:
    """The traces endpoint the variables name, or ``None`` when export is off."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return None
    specific = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if specific:
        return specific
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if not base:
        return None
    if _protocol(env) == "grpc":
        return base
    return base.rstrip("/") + "/v1/traces"


def _protocol(env: Any) -> str:
    value = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    return str(value).strip().lower()


def configure(service_name: str, *, endpoint: str | None = None) -> Any:
    """Install a global SDK tracer provider exporting OTLP, if the variables (or
    ``endpoint``, a base URL like ``OTEL_EXPORTER_OTLP_ENDPOINT``) ask for it.

    Idempotent; leaves a provider someone else installed alone.

    :returns: the installed provider, or ``None`` when export is off.
    :raises ConfigurationError: the ``crosswire[otlp]`` extra is not installed, or an
        unknown protocol.
    """
    global _installed
    if _installed is not None:
        return _installed
    env = dict(os.environ)
    if endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint  # the same as the variable, for workers too
        os.environ.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    url = configured_endpoint(env)
    if url is None:
        return None
    protocol = _protocol(env)
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporter: Any
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter as GrpcExporter,
            )

            exporter = GrpcExporter(endpoint=url)
        elif protocol in ("http/protobuf", "http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=url)
        else:
            raise ConfigurationError(f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r}: expected http/protobuf or grpc")
    except ImportError as exc:
        raise ConfigurationError(
            f"exporting traces to {url} needs the otlp extra: pip install 'crosswire[otlp]' ({exc.name} missing)"
        ) from None
    current = trace.get_tracer_provider()
    if type(current).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider"):
        return current  # the application installed its own
    resource = Resource.create({} if env.get("OTEL_SERVICE_NAME") else {"service.name": service_name})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _installed = provider
    log.info("exporting traces to %s (%s)", url, protocol)
    return provider
