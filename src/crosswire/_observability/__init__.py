"""Observability beyond the policy chain: OTLP export set up from the standard
``OTEL_*`` variables (:mod:`.otlp`), spans that workers ship in ``RESULT`` turned into
exported spans (:mod:`.export`), worker log frames written through the node's loggers
(:mod:`.logs`). The wire shapes are in :mod:`.records` (no OpenTelemetry import)."""
