"""The access log: one line per request, written in batches and at shutdown, as JSON
(the default) or text; every request has an id, echoed and in each of its lines."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import re
from typing import Any

import pytest
from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.http.access_log import AccessLog

TEXT_LINE = re.compile(
    r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \S+ "(?P<method>[A-Z]+) (?P<target>\S+) HTTP/1\.1" '
    r"(?P<status>\d{3}) \d+\.\d\dms \[(?P<request_id>[^]]+)\](?P<rest>.*)"
)
FIELDS = {
    "time",
    "logger",
    "request_id",
    "client",
    "method",
    "target",
    "route",
    "status",
    "duration_ms",
    "realm",
    "client_id",
}


def access_lines(out: str) -> list[dict[str, Any]]:
    """The JSON access log lines in ``out`` (every line must be one JSON object)."""
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert all(isinstance(line, dict) for line in lines)
    return [line for line in lines if line.get("logger") == "access"]


def basic(reg: dict[str, Any]) -> dict[str, str]:
    import base64

    pair = f"{reg['client_id']}:{reg['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def test_every_request_is_one_json_line_with_its_route_realm_and_client(
    settings: Settings, admin: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with TestClient(create_app(settings)) as client:
        reg = client.post("/oauth/register", json={}, headers=admin).json()
        client.post("/v1/realms", json={"name": "acme"}, headers=admin)
        capsys.readouterr()
        client.get("/.well-known/jwks.json")  # the hot path
        client.get("/realms/acme/.well-known/jwks.json")
        client.get("/v1/realms/acme/jwt_keys", headers=admin)  # the framework
        client.get("/v1/realms")  # 401
        client.get("/healthz?probe=1")
        client.get("/no/such/path")
        client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(reg))
        client.post("/realms/acme/oauth/token", data={"grant_type": "client_credentials"})
    # The lifespan has ended: what was pending is written.
    lines = access_lines(capsys.readouterr().out)
    # The set-up's lines were still pending: written with the rest, in order.
    assert [line["target"] for line in lines[:2]] == ["/oauth/register", "/v1/realms"]
    lines = lines[2:]
    assert all(set(line) == FIELDS for line in lines)
    picked = [
        {k: line[k] for k in ("method", "target", "route", "status", "realm", "client_id")}
        for line in lines
    ]
    assert picked == [
        {
            "method": "GET",
            "target": "/.well-known/jwks.json",
            "route": "/.well-known/jwks.json",
            "status": 200,
            "realm": "default",
            "client_id": None,
        },
        {
            "method": "GET",
            "target": "/realms/acme/.well-known/jwks.json",
            "route": "/realms/{realm}/.well-known/jwks.json",
            "status": 200,
            "realm": "acme",
            "client_id": None,
        },
        {
            "method": "GET",
            "target": "/v1/realms/acme/jwt_keys",
            "route": "/v1/realms/{realm}/jwt_keys",
            "status": 200,
            "realm": "acme",
            "client_id": None,
        },
        {
            "method": "GET",
            "target": "/v1/realms",
            "route": "/v1/realms",
            "status": 401,
            "realm": None,
            "client_id": None,
        },
        {
            "method": "GET",
            "target": "/healthz?probe=1",
            "route": "/healthz",
            "status": 200,
            "realm": None,
            "client_id": None,
        },
        {
            "method": "GET",
            "target": "/no/such/path",
            "route": None,
            "status": 404,
            "realm": None,
            "client_id": None,
        },
        {
            "method": "POST",
            "target": "/oauth/token",
            "route": "/oauth/token",
            "status": 200,
            "realm": "default",
            "client_id": reg["client_id"],
        },
        {
            "method": "POST",
            "target": "/realms/acme/oauth/token",
            "route": "/realms/{realm}/oauth/token",
            "status": 401,
            "realm": "acme",
            "client_id": None,  # none authenticated
        },
    ]
    assert all(re.fullmatch(r"[0-9a-f]{16}", line["request_id"]) for line in lines)
    assert len({line["request_id"] for line in lines}) == len(lines)
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]) for line in lines
    )


def test_the_text_format_has_the_request_line_and_the_context(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with TestClient(create_app(dataclasses.replace(settings, log_format="text"))) as client:
        capsys.readouterr()
        client.get("/realms/default/.well-known/jwks.json", headers={"X-Request-ID": "abc-1"})
        client.get("/healthz?probe=1")
    matches = [TEXT_LINE.fullmatch(line) for line in capsys.readouterr().out.splitlines()]
    jwks, health = [m.groupdict() for m in matches if m]
    assert jwks == {
        "method": "GET",
        "target": "/realms/default/.well-known/jwks.json",
        "status": "200",
        "request_id": "abc-1",
        "rest": " realm=default",
    }
    assert health["target"] == "/healthz?probe=1" and health["rest"] == ""
    assert re.fullmatch(r"[0-9a-f]{16}", health["request_id"])


def test_switched_off_it_writes_nothing(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    off = dataclasses.replace(settings, access_log=False)
    with TestClient(create_app(off)) as client:
        client.get("/.well-known/jwks.json")
    assert not access_lines(capsys.readouterr().out)


async def test_lines_are_written_in_batches() -> None:
    stream = io.StringIO()
    log = AccessLog(stream, flush_interval=0.05)
    for n in range(3):
        log.record(("10.0.0.1", 5000 + n), "GET", "/x", "1.1", 200, 0.0001, request_id=f"r{n}")
    assert stream.getvalue() == ""  # not yet: one write for the batch
    await asyncio.sleep(0.1)
    written = access_lines(stream.getvalue())
    assert [line["client"] for line in written] == [f"10.0.0.1:{5000 + n}" for n in range(3)]
    assert [line["request_id"] for line in written] == ["r0", "r1", "r2"]


def test_credentials_in_a_query_string_are_not_logged() -> None:
    from service.http.access_log import _redacted

    query = b"limit=25&client_secret=s3cr3t&TOKEN=t0k&%74oken=t1k&cursor=abc&flag"
    assert _redacted(query) == (
        "limit=25&client_secret=[redacted]&TOKEN=[redacted]&%74oken=[redacted]&cursor=abc&flag"
    )
    assert _redacted(b"nothing-here") == "nothing-here"


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_path_cannot_write_a_line_of_its_own(
    settings: Settings, capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    forged = '2026-01-01T00:00:00Z 10.0.0.1:1 "GET /admin HTTP/1.1" 200 0.01ms'
    forged_json = '{"logger":"access","target":"/admin","status":200}'
    with TestClient(create_app(dataclasses.replace(settings, log_format=log_format))) as client:
        capsys.readouterr()
        client.get("/x%0A" + forged.replace(" ", "%20").replace('"', "%22"))
        client.get("/realms/a%0A" + forged_json.replace('"', "%22") + "/.well-known/jwks.json")
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 2  # one line each, whatever the path holds
    assert not [line for line in out.splitlines() if line.startswith((forged[:30], '{"logger'))]
    assert "/x%0A2026" in out  # logged as sent, percent-encoded
    if log_format == "json":
        assert [line["status"] for line in access_lines(out)] == [404, 404]


def test_a_target_without_raw_path_is_escaped() -> None:
    from service.http.access_log import request_target

    scope = {"path": "/x\nforged", "query_string": b""}
    assert request_target(scope) == "/x\\nforged"


# Request ids ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/.well-known/jwks.json"),  # prebuilt answer
        ("POST", "/oauth/token"),  # hot endpoint
        ("GET", "/v1/realms"),  # the framework
        ("GET", "/nowhere"),  # 404
    ],
)
def test_a_sane_caller_request_id_is_echoed(client: TestClient, method: str, path: str) -> None:
    given = "5f0c6b2e-1c1d-4a53-9a0b-3c2f4a1b7e10"
    response = client.request(method, path, headers={"X-Request-ID": given})
    assert response.headers["x-request-id"] == given


def test_a_304_echoes_the_request_id_too(client: TestClient) -> None:
    etag = client.get("/.well-known/jwks.json").headers["etag"]
    response = client.get(
        "/.well-known/jwks.json", headers={"If-None-Match": etag, "X-Request-ID": "r-304"}
    )
    assert response.status_code == 304 and response.headers["x-request-id"] == "r-304"


@pytest.mark.parametrize(
    "given", [None, b"", b"a b", b"x" * 129, "id\u00e9".encode("latin-1"), b"a\\b", b'a"b']
)
def test_otherwise_a_new_id_is_made(client: TestClient, given: bytes | None) -> None:
    headers = {} if given is None else {b"X-Request-ID": given}
    first = client.get("/.well-known/jwks.json", headers=headers).headers["x-request-id"]
    second = client.get("/.well-known/jwks.json", headers=headers).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{16}", first) and first != second


def test_every_log_line_of_a_request_carries_its_id(
    client: TestClient, admin: dict[str, str], service_log: io.StringIO
) -> None:
    failed = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + "amNsX25vbmU6bm9wZQ==", "X-Request-ID": "req-A"},
    )
    assert failed.status_code == 401
    created = client.post(
        "/v1/realms", json={"name": "traced"}, headers={**admin, "X-Request-ID": "req-B"}
    )
    assert created.status_code == 201
    lines = [json.loads(line) for line in service_log.getvalue().splitlines()]
    by_request = {
        rid: [line for line in lines if line.get("request_id") == rid] for rid in ("req-A", "req-B")
    }
    assert any("invalid_client" in line["message"] for line in by_request["req-A"])
    audit = [line for line in by_request["req-B"] if line["logger"] == "service.audit"]
    assert [line["event"]["type"] for line in audit] == ["realm.created", "key.created"]
    assert audit[0]["event"]["realm"] == "traced"
    assert audit[0]["message"].startswith("realm.created realm=traced actor=bootstrap")
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)


def test_lines_outside_a_request_have_no_id(service_log: io.StringIO) -> None:
    logging.getLogger("service.test").warning("background %s", "work")
    (line,) = [json.loads(text) for text in service_log.getvalue().splitlines()]
    assert line["message"] == "background work" and line["level"] == "WARNING"
    assert "request_id" not in line
