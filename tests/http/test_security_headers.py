"""Headers every response carries, and those that keep secrets out of caches."""

from __future__ import annotations

import base64

from starlette.routing import Route
from starlette.testclient import TestClient

FORM = {"grant_type": "client_credentials"}
CSP = "default-src 'none'; frame-ancestors 'none'"


def _concrete(path: str) -> str:
    for name, value in (("{realm}", "default"), ("{digest}", "0" * 64), ("{id}", "x")):
        path = path.replace(name, value)
    for name in ("{key_id}", "{client_id}"):
        path = path.replace(name, "x")
    return path


def test_every_response_says_nosniff(client: TestClient, admin: dict[str, str]) -> None:
    paths = {_concrete(r.path) for r in client.app.app.routes if isinstance(r, Route)}  # type: ignore[attr-defined]
    paths |= {"/.well-known/jwks.json", "/realms/nosuch/.well-known/jwks.json", "/nothing"}
    seen = set()
    for path in sorted(paths):
        for method in ("GET", "POST", "DELETE"):
            for headers in ({}, admin):
                response = client.request(method, path, headers=headers)
                assert response.headers.get("x-content-type-options") == "nosniff", (
                    method,
                    path,
                    response.status_code,
                )
                assert response.headers.get("content-security-policy") == CSP, (method, path)
                seen.add(response.status_code)
    etag = client.get("/.well-known/jwks.json").headers["etag"]
    not_modified = client.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.headers["x-content-type-options"] == "nosniff"
    assert not_modified.headers["content-security-policy"] == CSP
    assert {200, 401, 404, 405} <= seen


def test_no_response_is_html(client: TestClient, admin: dict[str, str]) -> None:
    # Nothing here renders HTML; every answer carries a policy that would let an
    # HTML one do nothing (above).
    for path in ("/", "/nothing", "/.well-known/jwks.json", "/v1/realms", "/oauth/token"):
        for headers in ({}, admin):
            response = client.get(path, headers=headers)
            assert "html" not in response.headers.get("content-type", ""), path


def test_responses_with_a_secret_or_a_token_are_not_stored(
    client: TestClient, admin: dict[str, str]
) -> None:
    registered = client.post("/oauth/register", json={}, headers=admin)
    assert registered.status_code == 201 and "client_secret" in registered.json()
    assert registered.headers["cache-control"] == "no-store"
    reg = registered.json()
    basic = base64.b64encode(f"{reg['client_id']}:{reg['client_secret']}".encode()).decode()
    token = client.post("/oauth/token", data=FORM, headers={"Authorization": f"Basic {basic}"})
    assert token.status_code == 200 and token.headers["cache-control"] == "no-store"
    introspected = client.post(
        "/oauth/introspect", data={"token": token.json()["access_token"]}, headers=admin
    )
    assert introspected.status_code == 200 and introspected.json()["active"] is True
    assert introspected.headers["cache-control"] == "no-store"
    secret = client.post("/v1/realms/default/jwt_keys", json={"algo": "hs256"}, headers=admin)
    assert secret.status_code == 201 and "key" in secret.json()
    assert secret.headers["cache-control"] == "no-store"
