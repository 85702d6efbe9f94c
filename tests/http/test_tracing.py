"""OpenTelemetry tracing (the ``otel`` extra): off by default; on, one server span per
request, named by its route template, continuing the caller's trace."""

from __future__ import annotations

import base64
import dataclasses
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from service.app import create_app
from service.config import ConfigError, Settings
from service.http.hot import HotPaths

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced_client(settings: Settings, exporter: InMemorySpanExporter) -> Iterator[TestClient]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(dataclasses.replace(settings, otel=True), tracer_provider=provider)
    with TestClient(app) as client:
        yield client


def spans(exporter: InMemorySpanExporter) -> list[Any]:
    return [span for span in exporter.get_finished_spans() if span.kind.name == "SERVER"]


def test_off_by_default_the_app_is_not_wrapped(settings: Settings) -> None:
    assert not Settings().otel
    assert isinstance(create_app(settings), HotPaths)


def test_a_request_is_one_span_named_by_its_route(
    traced_client: TestClient, exporter: InMemorySpanExporter, admin: dict[str, str]
) -> None:
    traced_client.post("/v1/realms", json={"name": "acme"}, headers=admin).raise_for_status()
    reg = traced_client.post("/realms/acme/oauth/register", json={}, headers=admin).json()
    exporter.clear()
    traced_client.get("/realms/acme/.well-known/jwks.json", headers={"X-Request-ID": "rid-1"})
    pair = base64.b64encode(f"{reg['client_id']}:{reg['client_secret']}".encode()).decode()
    token = traced_client.post(
        "/realms/acme/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {pair}"},
    )
    assert token.status_code == 200
    traced_client.get("/v1/realms/acme/jwt_keys", headers=admin)
    found = spans(exporter)
    assert [span.name for span in found] == [
        "GET /realms/{realm}/.well-known/jwks.json",
        "POST /realms/{realm}/oauth/token",
        "GET /v1/realms/{realm}/jwt_keys",
    ]
    jwks, issued, listed = (dict(span.attributes) for span in found)
    assert jwks["http.route"] == "/realms/{realm}/.well-known/jwks.json"
    assert jwks["jwks.realm"] == "acme" and jwks["jwks.request_id"] == "rid-1"
    assert issued["jwks.client_id"] == reg["client_id"]
    assert listed["jwks.realm"] == "acme" and "jwks.client_id" not in listed
    # Never a secret on a span: no Authorization header, no form, no token.
    text = repr([dict(span.attributes) for span in found])
    assert reg["client_secret"] not in text and token.json()["access_token"] not in text
    assert admin["Authorization"].split()[1] not in text


def test_the_callers_trace_is_continued(
    traced_client: TestClient, exporter: InMemorySpanExporter
) -> None:
    parent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    traced_client.get("/.well-known/jwks.json", headers={"traceparent": parent})
    (span,) = spans(exporter)
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == "00f067aa0ba902b7"


def test_an_unmatched_path_keeps_a_generic_name(
    traced_client: TestClient, exporter: InMemorySpanExporter
) -> None:
    traced_client.get("/no/such/realm/abc123")
    (span,) = spans(exporter)
    assert "abc123" not in span.name  # a path never names a span


def test_on_without_the_extra_is_one_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the otel extra were not installed: its packages cannot be found.
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.asgi", None)
    with pytest.raises(ConfigError, match=r"JWKS_OTEL: .*pip install 'jwks-service\[otel\]'"):
        Settings.from_env({"JWKS_OTEL": "true"})
