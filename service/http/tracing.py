"""OpenTelemetry tracing, an optional extra: ``pip install 'jwks-service[otel]'``.

Off unless ``JWKS_OTEL`` is true; then every HTTP request is a server span (W3C
``traceparent`` from the caller is continued), named by its route template
(``POST /realms/{realm}/oauth/token``, never by a path, which names realms and
keys) and carrying the realm, the authenticated client and the request id. Spans
go to an OTLP/HTTP collector configured by the standard ``OTEL_*`` variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``, ...), in batches, off the
event loop. Only this module imports ``opentelemetry``; the ``send``/``receive``
child spans of the ASGI instrumentation are left out: one span per request is
what a trace of an authorization server needs, and each extra span costs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http._routing import CLIENT_ID, REALM, ROUTE
from service.logs import REQUEST_ID

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["traced"]


def traced(app: ASGIApp, tracer_provider: TracerProvider | None = None) -> ASGIApp:
    """``app`` inside the OpenTelemetry ASGI middleware.

    ``tracer_provider``: where spans go (tests pass one with an in-memory
    exporter); by default a provider exporting over OTLP/HTTP, as the ``OTEL_*``
    variables say.
    """
    # Imported here: without the extra, the rest of the service never needs it
    # (the settings refuse JWKS_OTEL then).
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    provider = tracer_provider or _otlp_provider()
    return OpenTelemetryMiddleware(
        _SpanNaming(app),
        tracer_provider=provider,
        default_span_details=_method_only,
        exclude_spans=["receive", "send"],
    )


def _otlp_provider() -> TracerProvider:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME, when set, wins over this default (the SDK reads it).
    name = os.environ.get("OTEL_SERVICE_NAME") or "jwks-service"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def _method_only(scope: Scope) -> tuple[str, dict[str, Any]]:
    # The name until the route is known, and for a path no route matched: never
    # the path itself (it names realms and keys; a span name is a low-cardinality key).
    method: str = scope.get("method", "HTTP")
    return method, {}


class _SpanNaming:
    """Names the request's span after the route that answers it, as the answer starts
    (the span ends with the answer's last byte)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from opentelemetry import trace

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                _describe(trace.get_current_span(), scope)
            await send(message)

        await self.app(scope, receive, sending)


def _describe(span: Any, scope: Scope) -> None:
    route = scope.get(ROUTE)
    attributes: dict[str, Any] = {"jwks.request_id": REQUEST_ID.get() or ""}
    if route:
        span.update_name(f"{scope['method']} {route}")
        attributes["http.route"] = route
    realm = scope.get(REALM) or scope.get("path_params", {}).get("realm")
    if realm:
        attributes["jwks.realm"] = realm
    if scope.get(CLIENT_ID):
        attributes["jwks.client_id"] = scope[CLIENT_ID]
    span.set_attributes(attributes)
