"""Introspection (RFC 7662): the verifier's side, with the algorithm pinned to the stored key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.testclient import TestClient

URL = "/oauth/introspect"


@pytest.fixture(scope="module")
def tenant_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=4096)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def server_token(client: TestClient, admin: dict[str, str]) -> str:
    reg = client.post(
        "/oauth/register", json={"token_endpoint_auth_method": "client_secret_post"}, headers=admin
    ).json()
    response = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": reg["client_id"],
            "client_secret": reg["client_secret"],
        },
    )
    token: str = response.json()["access_token"]
    return token


def introspect(client: TestClient, admin: dict[str, str], token: str) -> dict[str, Any]:
    response = client.post(URL, data={"token": token}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def active_key(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    keys = client.get("/v1/realms/default/jwt_keys", headers=admin).json()["data"]
    key: dict[str, Any] = next(k for k in keys if k["status"] == "active" and k["algo"] == "rs256")
    return key


def test_server_token_through_grace_and_forced_delete(
    client: TestClient, admin: dict[str, str]
) -> None:
    token = server_token(client, admin)
    body = introspect(client, admin, token)
    assert body["active"] is True and body["iss"] == "http://testserver" and body["kid"]
    key = active_key(client, admin)
    # Rotated out (expired): still active during the grace.
    client.delete(f"/v1/realms/default/jwt_keys/{key['id']}", headers=admin)
    assert introspect(client, admin, token)["active"] is True
    # Force-deleted: inactive at once.
    client.delete(f"/v1/realms/default/jwt_keys/{key['id']}?force=true", headers=admin)
    assert introspect(client, admin, token) == {"active": False}


def test_forgeries_are_inactive(client: TestClient, admin: dict[str, str]) -> None:
    token = server_token(client, admin)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    kid = jwt.get_unverified_header(token)["kid"]
    pem = jwt.algorithms.RSAAlgorithm.from_jwk(
        next(k for k in client.get("/.well-known/jwks.json").json()["keys"] if k["kid"] == kid)
    ).public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[union-attr]
    signing_input = f"{b64url(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{payload}"
    confused = (
        f"{signing_input}.{b64url(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"
    )
    none = f"{b64url(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{payload}."
    tampered = f"{header}.{b64url(json.dumps({**claims, 'sub': 'admin'}).encode())}.{signature}"
    unknown_kid = (
        f"{b64url(json.dumps({'alg': 'RS256', 'kid': 'nope'}).encode())}.{payload}.{signature}"
    )
    for forged in (confused, none, tampered, unknown_kid, "garbage", "a.b.c"):
        assert introspect(client, admin, forged) == {"active": False}


def test_tenant_signed_token_with_uploaded_key(
    client: TestClient, admin: dict[str, str], tenant_key: rsa.RSAPrivateKey
) -> None:
    pem = (
        tenant_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    uploaded = client.post(
        "/v1/realms/default/jwt_keys",
        json={"public_key": pem, "kid": "tenant/key-1"},
        headers=admin,
    )
    assert uploaded.status_code == 201
    now = int(time.time())
    token = jwt.encode(
        {"iss": "my-app", "aud": "jitsi", "room": "*", "exp": now + 60},
        tenant_key,
        algorithm="RS256",
        headers={"kid": "tenant/key-1"},
    )
    body = introspect(client, admin, token)
    assert body["active"] is True and body["kid"] == "tenant/key-1" and body["iss"] == "my-app"
    # One byte changed in the signature.
    head, payload, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert introspect(client, admin, f"{head}.{payload}.{flipped}") == {"active": False}
    expired = jwt.encode(
        {"iss": "my-app", "exp": now - 5},
        tenant_key,
        algorithm="RS256",
        headers={"kid": "tenant/key-1"},
    )
    assert introspect(client, admin, expired) == {"active": False}
    future = jwt.encode(
        {"iss": "my-app", "exp": now + 60, "nbf": now + 30},
        tenant_key,
        algorithm="RS256",
        headers={"kid": "tenant/key-1"},
    )
    assert introspect(client, admin, future) == {"active": False}


def test_wrong_issuer_for_server_key_and_hs256_key(
    client: TestClient, admin: dict[str, str]
) -> None:
    created = client.post(
        "/v1/realms/default/jwt_keys", json={"algo": "hs256"}, headers=admin
    ).json()
    now = int(time.time())
    good = jwt.encode(
        {"iss": "http://testserver", "exp": now + 60},
        created["key"],
        algorithm="HS256",
        headers={"kid": created["kid"]},
    )
    assert introspect(client, admin, good)["active"] is True
    wrong_iss = jwt.encode(
        {"iss": "http://evil", "exp": now + 60},
        created["key"],
        algorithm="HS256",
        headers={"kid": created["kid"]},
    )
    assert introspect(client, admin, wrong_iss) == {"active": False}


def test_introspection_needs_authentication(client: TestClient, admin: dict[str, str]) -> None:
    token = server_token(client, admin)
    assert client.post(URL, data={"token": token}).status_code == 401
    assert (
        client.post(URL, data={"token": token}, headers={"Authorization": "Bearer x"}).status_code
        == 401
    )
    reg = client.post(
        "/oauth/register", json={"token_endpoint_auth_method": "client_secret_post"}, headers=admin
    ).json()
    as_client = client.post(
        URL,
        data={"token": token, "client_id": reg["client_id"], "client_secret": reg["client_secret"]},
    )
    assert as_client.status_code == 200 and as_client.json()["active"] is True


def test_uploaded_key_expected_issuer_and_audience(
    client: TestClient, admin: dict[str, str], tenant_key: rsa.RSAPrivateKey
) -> None:
    pem = (
        tenant_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    body = {
        "public_key": pem,
        "kid": "k",
        "expected_issuer": "my-app",
        "expected_audience": "jitsi",
    }
    created = client.post("/v1/realms/default/jwt_keys", json=body, headers=admin)
    assert created.status_code == 201
    assert created.json()["expected_issuer"] == "my-app"
    now = int(time.time())

    def token(**claims: Any) -> str:
        return jwt.encode(
            {"exp": now + 60, **claims}, tenant_key, algorithm="RS256", headers={"kid": "k"}
        )

    assert introspect(client, admin, token(iss="my-app", aud="jitsi"))["active"] is True
    assert introspect(client, admin, token(iss="other", aud="jitsi")) == {"active": False}
    assert introspect(client, admin, token(iss="my-app", aud="other")) == {"active": False}
    assert introspect(client, admin, token(aud="jitsi")) == {"active": False}
    # Only uploads take expectations.
    refused = client.post(
        "/v1/realms/default/jwt_keys",
        json={"algo": "es256", "expected_issuer": "x"},
        headers=admin,
    )
    assert refused.status_code == 400 and refused.json()["field"] == "expected_issuer"


def _registered_token(client: TestClient, admin: dict[str, str]) -> tuple[str, str]:
    """A new client's id and an access token issued to it."""
    reg = client.post("/oauth/register", json={}, headers=admin).json()
    response = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(reg["client_id"], reg["client_secret"]),
    )
    return reg["client_id"], response.json()["access_token"]


def test_a_deleted_clients_tokens_are_inactive_at_once(
    client: TestClient, admin: dict[str, str]
) -> None:
    gone, token = _registered_token(client, admin)
    _, other_token = _registered_token(client, admin)
    assert introspect(client, admin, token)["client_id"] == gone
    assert client.delete(f"/v1/realms/default/clients/{gone}", headers=admin).status_code == 204
    assert introspect(client, admin, token) == {"active": False}
    assert introspect(client, admin, other_token)["active"] is True


def test_a_deleted_clients_tokens_are_inactive_in_every_replica(
    make_client: Callable[..., TestClient], admin: dict[str, str]
) -> None:
    """Deleted through one replica, the client's tokens go inactive in the other, which
    had it cached (the store's change message drops it there)."""
    writer, reader = make_client(), make_client()
    gone, token = _registered_token(writer, admin)
    assert introspect(reader, admin, token)["active"] is True  # now cached in the reader
    assert writer.delete(f"/v1/realms/default/clients/{gone}", headers=admin).status_code == 204
    deadline = time.monotonic() + 5
    while introspect(reader, admin, token)["active"]:
        assert time.monotonic() < deadline, "the other replica still says active"
        time.sleep(0.02)
