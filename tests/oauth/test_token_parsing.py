"""Hostile JWTs at the endpoints: oversized tokens and duplicate claim names.

Each token here is validly signed (by PyJWT, over payload bytes written by hand),
so only the service's parsing rules can refuse it: a client_assertion at the
token endpoint must get invalid_client, an introspected token ``active: false``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.testclient import TestClient

from tests.oauth.test_token import assertion_claims

ISSUER = "http://testserver"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Well past the service's 8 KiB limit, well within its 64 KiB request bodies.
LARGE = 40_000


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sign(key: rsa.RSAPrivateKey, payload: bytes | dict[str, Any], kid: str) -> str:
    """RS256 over exactly ``payload`` when it is bytes (JSON no dict can produce)."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return jwt.api_jws.PyJWS().encode(raw, key, algorithm="RS256", headers={"kid": kid})


def key_client(client: TestClient, admin: dict[str, str], key: rsa.RSAPrivateKey) -> str:
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    response = client.post(
        "/oauth/register",
        json={
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [{**jwk, "kid": "k1"}]},
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["client_id"]
    return client_id


def token_request(client: TestClient, assertion: str) -> Any:
    return client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )


def invalid_client(response: Any) -> str:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "invalid_client"
    description: str = body.get("error_description", "")
    return description


def upload_tenant_key(client: TestClient, admin: dict[str, str], key: rsa.RSAPrivateKey) -> None:
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    response = client.post(
        "/v1/realms/default/jwt_keys",
        json={"public_key": pem.decode(), "kid": "tenant-1"},
        headers=admin,
    )
    assert response.status_code == 201, response.text


def introspect(client: TestClient, admin: dict[str, str], token: str) -> dict[str, Any]:
    response = client.post("/oauth/introspect", data={"token": token}, headers=admin)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# client_assertion -------------------------------------------------------------------


def test_a_40_kb_client_assertion_is_invalid_client(
    client: TestClient, admin: dict[str, str], rsa_key: rsa.RSAPrivateKey
) -> None:
    client_id = key_client(client, admin, rsa_key)
    assert (
        token_request(client, sign(rsa_key, assertion_claims(client_id), "k1")).status_code == 200
    )
    large = sign(rsa_key, assertion_claims(client_id, pad="x" * LARGE), "k1")
    assert len(large) > LARGE
    assert "longer than 8192 bytes" in invalid_client(token_request(client, large))


def test_a_client_assertion_with_a_duplicate_claim_is_invalid_client(
    client: TestClient, admin: dict[str, str], rsa_key: rsa.RSAPrivateKey
) -> None:
    client_id = key_client(client, admin, rsa_key)
    # {"iss": ..., "sub": "someone-else", ..., "sub": client_id}: json.loads keeps the
    # last sub, and another parser of the same assertion may keep the first.
    claims = json.dumps(assertion_claims(client_id, sub="someone-else"))
    duplicated = claims[:-1] + f', "sub": "{client_id}"}}'
    assert json.loads(duplicated)["sub"] == client_id
    description = invalid_client(token_request(client, sign(rsa_key, duplicated.encode(), "k1")))
    assert "duplicate member name" in description


# introspection ----------------------------------------------------------------------


def test_a_40_kb_token_introspects_as_inactive(
    client: TestClient, admin: dict[str, str], rsa_key: rsa.RSAPrivateKey
) -> None:
    upload_tenant_key(client, admin, rsa_key)
    claims = {"iss": "my-app", "exp": int(time.time()) + 60}
    assert introspect(client, admin, sign(rsa_key, claims, "tenant-1"))["active"] is True
    large = sign(rsa_key, {**claims, "pad": "x" * LARGE}, "tenant-1")
    assert len(large) > LARGE
    assert introspect(client, admin, large) == {"active": False}


def test_a_token_with_a_duplicate_claim_introspects_as_inactive(
    client: TestClient, admin: dict[str, str], rsa_key: rsa.RSAPrivateKey
) -> None:
    upload_tenant_key(client, admin, rsa_key)
    now = int(time.time())
    # Expired by its first exp, alive by its last: json.loads would say active.
    payload = f'{{"iss": "my-app", "exp": {now - 3600}, "exp": {now + 60}}}'.encode()
    assert introspect(client, admin, sign(rsa_key, payload, "tenant-1")) == {"active": False}
