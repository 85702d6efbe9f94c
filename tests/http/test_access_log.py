"""The access log: one line per request, written in batches and at shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re

import pytest
from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.http.access_log import AccessLog

LINE = re.compile(
    r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \S+ "(?P<method>[A-Z]+) (?P<target>\S+) HTTP/1\.1" '
    r"(?P<status>\d{3}) \d+\.\d\dms"
)


def test_every_request_is_logged_once_when_the_app_stops(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with TestClient(create_app(settings)) as client:
        capsys.readouterr()
        client.get("/.well-known/jwks.json")  # the hot path
        client.get("/v1/realms")  # the framework: 401
        client.get("/healthz?probe=1")
        client.post("/oauth/token", data={"grant_type": "client_credentials"})  # 401
    # The lifespan has ended: what was pending is written.
    lines = [m.groupdict() for m in map(LINE.fullmatch, capsys.readouterr().out.splitlines()) if m]
    assert lines == [
        {"method": "GET", "target": "/.well-known/jwks.json", "status": "200"},
        {"method": "GET", "target": "/v1/realms", "status": "401"},
        {"method": "GET", "target": "/healthz?probe=1", "status": "200"},
        {"method": "POST", "target": "/oauth/token", "status": "401"},
    ]


def test_switched_off_it_writes_nothing(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    off = dataclasses.replace(settings, access_log=False)
    with TestClient(create_app(off)) as client:
        client.get("/.well-known/jwks.json")
    assert not [line for line in capsys.readouterr().out.splitlines() if LINE.fullmatch(line)]


async def test_lines_are_written_in_batches() -> None:
    stream = io.StringIO()
    log = AccessLog(stream, flush_interval=0.05)
    for n in range(3):
        log.record(("10.0.0.1", 5000 + n), "GET", "/x", "1.1", 200, 0.0001)
    assert stream.getvalue() == ""  # not yet: one write for the batch
    await asyncio.sleep(0.1)
    written = stream.getvalue().splitlines()
    assert len(written) == 3 and all(LINE.fullmatch(line) for line in written)
    assert written[0].split()[1] == "10.0.0.1:5000"


def test_credentials_in_a_query_string_are_not_logged() -> None:
    from service.http.access_log import _redacted

    query = b"limit=25&client_secret=s3cr3t&TOKEN=t0k&%74oken=t1k&cursor=abc&flag"
    assert _redacted(query) == (
        "limit=25&client_secret=[redacted]&TOKEN=[redacted]&%74oken=[redacted]&cursor=abc&flag"
    )
    assert _redacted(b"nothing-here") == "nothing-here"


def test_a_path_cannot_write_a_line_of_its_own(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = '2026-01-01T00:00:00Z 10.0.0.1:1 "GET /admin HTTP/1.1" 200 0.01ms'
    with TestClient(create_app(settings)) as client:
        capsys.readouterr()
        client.get("/x%0A" + forged.replace(" ", "%20").replace('"', "%22"))
    out = capsys.readouterr().out
    assert not [line for line in out.splitlines() if line.startswith(forged[:30])]
    assert "/x%0A2026" in out  # logged as sent, percent-encoded


def test_a_target_without_raw_path_is_escaped() -> None:
    from service.http.access_log import request_target

    scope = {"path": "/x\nforged", "query_string": b""}
    assert request_target(scope) == "/x\\nforged"
