"""``GET /openapi.json``: a valid OpenAPI 3.1 document that says what the routes do.

Every route and method is documented (or, under an issuer, refused with 405), and
every documented status of every operation, HEAD twins included, is what a
representative request gets (:mod:`tests.http._openapi_cases`), with the
documented media type, JSON schema and required headers. A documented status
without a request fails the test, so the tables and the document cannot drift
apart. The 503s come from a store that has gone away, the 429s from limits of one
request a minute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route
from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.storage.embedded import EmbeddedServer, find_server_binary
from tests.conftest import FakeClock
from tests.http._openapi_cases import (
    DOCUMENT,
    Case,
    World,
    admin_key,
    cases,
    limited_cases,
    make_world,
    metrics_cases,
    outage_cases,
    pair,
    register,
)


#: (path, method, status) that the route answers otherwise than documented: reported
#: to the route's owner, and checked on their own as strict xfails, so that a fix
#: shows (then take it out of here).
def _resolve(response: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in response:
        resolved: dict[str, Any] = DOCUMENT["components"]["responses"][
            response["$ref"].rsplit("/", 1)[1]
        ]
        return resolved
    return response


def _validate(schema: dict[str, Any], instance: object) -> None:
    # The document's components beside the schema, so that its #/components/... resolve.
    root = {**schema, "components": DOCUMENT["components"]}
    validator = jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(instance)


def check(client: TestClient, case: Case, method: str | None = None) -> None:
    """Send ``case`` (as ``method``, for a HEAD twin) and hold the answer to the document."""
    method = method or case.method
    response = client.request(method, case.url, **case.kwargs)
    where = f"{method} {case.url} (documented as {case.path})"
    assert response.status_code == case.status, f"{where}: {response.status_code} {response.text}"
    operation = DOCUMENT["paths"][case.path][method.lower()]
    documented = _resolve(operation["responses"][str(case.status)])
    for name, header in documented.get("headers", {}).items():
        if header["required"]:
            assert name in response.headers, f"{where}: no {name} header"
    content = documented.get("content")
    if not content:
        assert response.content == b"", f"{where}: a body where none is documented"
        return
    ((media, spec),) = content.items()
    assert response.headers["content-type"].split(";")[0] == media, f"{where}: {response.text}"
    if media.endswith("json"):
        _validate(spec["schema"], response.json())
    elif media == "text/plain":  # the Prometheus exposition
        assert response.text.startswith("# HELP "), where
    else:
        assert response.text.startswith("-----BEGIN PUBLIC KEY-----"), where


def check_all(client: TestClient, table: list[Case]) -> None:
    """Check every case, and the HEAD twin of every GET."""
    for case in table:
        check(client, case)
        if case.method == "GET":
            check(client, case, "HEAD")


def _keys(table: list[Case]) -> set[tuple[str, str, int]]:
    keys = {c.key for c in table}
    return keys | {(path, "HEAD", status) for path, method, status in keys if method == "GET"}


@pytest.fixture
def world(client: TestClient, admin: dict[str, str], settings: Settings) -> World:
    return make_world(client, admin, settings)


def test_the_document_is_valid_openapi_31_and_served(client: TestClient) -> None:
    validate(DOCUMENT)
    response = client.get("/openapi.json")
    assert response.headers["content-type"] == "application/json"
    assert response.json() == DOCUMENT
    ids = [op["operationId"] for item in DOCUMENT["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"


def test_every_route_and_method_is_documented(client: TestClient) -> None:
    """A method the document leaves out is one the route refuses: 405 (§5.2), with Allow."""
    routes = [r for r in client.app.app.routes if isinstance(r, Route)]  # type: ignore[attr-defined]
    routed = {(r.path, m) for r in routes for m in r.methods or ()}
    documented = {(path, m.upper()) for path, item in DOCUMENT["paths"].items() for m in item}
    assert documented <= routed, documented - routed
    for path, method in sorted(routed - documented):
        assert path in DOCUMENT["paths"], f"{path} is not documented"
        url = path.replace("{realm}", "default").replace("{digest}", "0" * 64)
        response = client.request(method, url)
        assert response.status_code == 405, (method, path, response.text)
        allowed = {m.upper() for m in DOCUMENT["paths"][path]}
        assert set(response.headers["allow"].split(", ")) == allowed, (method, path)
        if method != "HEAD":  # a HEAD answer has no body
            assert response.json()["error"] == "invalid_request", (method, path)


def test_every_documented_response_is_what_the_route_answers(
    client: TestClient, world: World
) -> None:
    table = cases(world)
    special = (
        outage_cases(world.admin)
        + limited_cases(world.admin, world.basic, world.basic)
        + metrics_cases()
    )
    documented = {
        (path, method.upper(), int(status))
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        for status in operation["responses"]
    }
    covered = _keys(table) | _keys(special)
    assert documented - covered == set(), "documented statuses without a request"
    assert covered - documented == set(), "requests for undocumented statuses"
    check_all(client, table)


@pytest.fixture
def outage(settings: Settings, admin: dict[str, str], tmp_path: Path) -> Iterator[TestClient]:
    """An app whose own store is stopped once it has started, with realm acme in it, and
    away for longer than the JWKS max-age (so that the replica is unready)."""
    server = EmbeddedServer(tmp_path / "valkey", find_server_binary())
    server.start()
    clock = FakeClock()
    try:
        own = Settings(**{**settings.__dict__, "redis_url": server.url, "access_log": False})
        with TestClient(create_app(own, clock=clock)) as client:
            assert client.post("/v1/realms", json={"name": "acme"}, headers=admin).is_success
            server.stop()
            clock.advance(own.jwks_max_age + 1)
            yield client
    finally:
        server.stop()


def test_every_documented_503_is_what_the_route_answers(
    outage: TestClient, admin: dict[str, str]
) -> None:
    check_all(outage, outage_cases(admin))


def test_every_documented_metrics_401_is_what_the_route_answers(
    make_client: Callable[..., TestClient],
) -> None:
    check_all(make_client(metrics_token="metrics-token-0123456789"), metrics_cases())


def test_every_documented_429_is_what_the_route_answers(
    make_client: Callable[..., TestClient], admin: dict[str, str], settings: Settings
) -> None:
    client = make_client(
        rate_admin_per_key=1, rate_token_per_client=1, rate_introspect_per_client=1
    )
    # The set-up, each request with an admin key of its own, so that the bootstrap
    # key's one request a minute is the last thing before the cases.
    assert client.post("/v1/realms", json={"name": "acme"}, headers=admin_key(settings))
    basic = pair(register(client, admin_key(settings)))
    acme_basic = pair(register(client, admin_key(settings), "/realms/acme"))
    assert client.get("/v1/realms", headers=admin).status_code == 200
    for base, credentials in (("", basic), ("/realms/acme", acme_basic)):
        grant = {"grant_type": "client_credentials"}
        assert client.post(f"{base}/oauth/token", data=grant, auth=credentials).is_success
        introspected = client.post(
            f"{base}/oauth/introspect", data={"token": "x"}, auth=credentials
        )
        assert introspected.is_success
    check_all(client, limited_cases(admin, basic, acme_basic))
