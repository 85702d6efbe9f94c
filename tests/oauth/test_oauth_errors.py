"""Every failure under an issuer is RFC 6749 §5.2 JSON, and says no more than it must.

Findings of issue 8: a malformed ``resource`` was a 500 with a traceback; Basic
credentials of one client with another's ``client_id`` got a token; the
``invalid_client`` description told an unknown client from a wrong secret; a
trailing slash was redirected to whatever host the Host header named.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.routing import Route
from starlette.testclient import TestClient

from service.oauth.grants import ClientCredentialsGrant
from tests.oauth.test_token import (
    FORM,
    TOKEN_URL,
    assertion,
    assertion_form,
    register,
    register_key_client,
    rsa_key,
)

__all__ = ["rsa_key"]  # the module's fixture, shared

#: Every endpoint under the default issuer and under a realm's.
ISSUER_ENDPOINTS = [
    f"{base}{path}"
    for base in ("", "/realms/default")
    for path in (
        "/oauth/token",
        "/oauth/introspect",
        "/oauth/register",
        "/.well-known/openid-configuration",
        "/asap/" + "0" * 64 + ".pem",
    )
] + ["/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/realms/x"]


def oauth_json(response: Any, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json", response.headers
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert set(body) <= {"error", "error_description"}
    return body


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def test_a_malformed_resource_is_invalid_target_not_a_500(
    client: TestClient, admin: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    reg = register(client, admin)
    for resource in ("http://[::1", "http://[v1.x]:80/", "https://a.example:99999999999/x"):
        response = client.post(
            TOKEN_URL,
            data={**FORM, "resource": resource},
            headers=basic(reg["client_id"], reg["client_secret"]),
        )
        if response.status_code == 200:  # a port is checked by whoever uses it
            continue
        oauth_json(response, 400, "invalid_target")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("path", ISSUER_ENDPOINTS)
def test_a_wrong_method_is_answered_in_oauth_json(client: TestClient, path: str) -> None:
    wrong = "GET" if "oauth/" in path else "POST"
    response = client.request(wrong, path)
    oauth_json(response, 405, "invalid_request")
    assert response.headers["allow"] in ("POST", "GET, HEAD")


@pytest.mark.parametrize("path", [p for p in ISSUER_ENDPOINTS if "/realms/" in p])
def test_an_unknown_realm_is_answered_in_oauth_json(
    client: TestClient, admin: dict[str, str], path: str
) -> None:
    path = path.replace("/realms/default", "/realms/nosuch").replace("/realms/x", "/realms/nosuch")
    method = "POST" if "oauth/" in path else "GET"
    response = client.request(method, path, data=FORM if method == "POST" else None, headers=admin)
    oauth_json(response, 404, "invalid_request")


def test_a_body_over_the_limit_is_answered_in_oauth_json(client: TestClient) -> None:
    big = {**FORM, "scope": "x" * 70_000}
    for path in ("/oauth/token", "/oauth/introspect", "/realms/default/oauth/token"):
        body = oauth_json(client.post(path, data=big), 413, "invalid_request")
        assert "64 KiB" in body["error_description"]


def test_an_unexpected_error_is_a_bare_server_error_and_logged(
    client: TestClient,
    admin: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = register(client, admin)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal state 0xdeadbeef")

    monkeypatch.setattr(ClientCredentialsGrant, "issue", broken)
    response = client.post(
        TOKEN_URL, data=FORM, headers=basic(reg["client_id"], reg["client_secret"])
    )
    body = oauth_json(response, 500, "server_error")
    assert body == {"error": "server_error"}
    assert "0xdeadbeef" not in response.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and errors[0].exc_info is not None  # the traceback is in the log


def test_basic_credentials_with_another_client_id_are_refused(
    client: TestClient, admin: dict[str, str]
) -> None:
    a = register(client, admin, client_name="a")
    b = register(client, admin, client_name="b")
    response = client.post(
        TOKEN_URL,
        data={**FORM, "client_id": b["client_id"]},
        headers=basic(a["client_id"], a["client_secret"]),
    )
    body = oauth_json(response, 400, "invalid_request")
    assert "client_id" in body["error_description"]
    # The same client_id beside its own credentials is fine (RFC 6749 §2.3.1 allows it).
    same = client.post(
        TOKEN_URL,
        data={**FORM, "client_id": a["client_id"]},
        headers=basic(a["client_id"], a["client_secret"]),
    )
    assert same.status_code == 200, same.text


def test_an_assertion_with_another_client_id_is_refused(
    client: TestClient, admin: dict[str, str], rsa_key: rsa.RSAPrivateKey
) -> None:
    a = register_key_client(client, admin, rsa_key)
    other = register(client, admin)
    form = assertion_form(assertion(rsa_key, a["client_id"]), client_id=other["client_id"])
    oauth_json(client.post(TOKEN_URL, data=form), 400, "invalid_request")


def test_invalid_client_says_the_same_for_an_unknown_client_a_wrong_secret_and_a_wrong_method(
    client: TestClient,
    admin: dict[str, str],
    rsa_key: rsa.RSAPrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "service.http.oauth")
    reg = register(client, admin)  # client_secret_basic
    keyed = register_key_client(client, admin, rsa_key)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attempts = {
        "unknown client, basic": dict(headers=basic("jcl_nosuch", "x")),
        "wrong secret, basic": dict(headers=basic(reg["client_id"], "wrong")),
        "unknown client, post": dict(data={"client_id": "jcl_nosuch", "client_secret": "x"}),
        "wrong method, post": dict(
            data={"client_id": reg["client_id"], "client_secret": reg["client_secret"]}
        ),
        "unknown client, assertion": dict(data=assertion_form(assertion(rsa_key, "jcl_nosuch"))),
        "wrong method, assertion": dict(data=assertion_form(assertion(rsa_key, reg["client_id"]))),
        "forged assertion": dict(data=assertion_form(assertion(forger, keyed["client_id"]))),
        "unknown kid": dict(data=assertion_form(assertion(rsa_key, keyed["client_id"], kid="k9"))),
    }
    descriptions = {}
    for name, request in attempts.items():
        data = {**FORM, **request.get("data", {})}
        response = client.post(TOKEN_URL, data=data, headers=request.get("headers"))
        descriptions[name] = oauth_json(response, 401, "invalid_client")["error_description"]
    assert set(descriptions.values()) == {"client authentication failed"}, descriptions
    # The log keeps what the answers do not say.
    for reason in ("unknown client 'jcl_nosuch'", "wrong secret for client", "is registered for"):
        assert reason in caplog.text
    assert reg["client_secret"] not in caplog.text


def test_shape_errors_keep_their_description(client: TestClient) -> None:
    # What does not depend on any client's record is said as it is.
    body = oauth_json(client.post(TOKEN_URL, data=FORM), 401, "invalid_client")
    assert body["error_description"] == "client authentication is required"
    malformed = client.post(TOKEN_URL, data=FORM, headers={"Authorization": "Basic !!"})
    assert "malformed" in oauth_json(malformed, 401, "invalid_client")["error_description"]


def _concrete(path: str) -> str:
    return (
        path.replace("{realm}", "default")
        .replace("{digest}", "0" * 64)
        .replace("{key_id}", "k")
        .replace("{client_id}", "c")
        .replace("{id}", "i")
    )


def test_no_route_redirects_a_trailing_slash_to_the_host_header(client: TestClient) -> None:
    routes = [r for r in client.app.app.routes if isinstance(r, Route)]  # type: ignore[attr-defined]
    assert len(routes) > 20
    paths = {_concrete(r.path) for r in routes} | {"/.well-known/jwks.json"}
    for path in sorted(paths):
        assert "{" not in path, path
        for method in ("GET", "POST"):
            response = client.request(
                method, path + "/", headers={"Host": "evil.example"}, follow_redirects=False
            )
            assert not 300 <= response.status_code < 400, (method, path, response.headers)
            assert "location" not in response.headers
    assert client.get("/.well-known/jwks.json/").status_code == 404
