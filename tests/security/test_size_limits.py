"""Every size the service accepts is bounded, and a request over a bound gets a 4xx
that names it (and changes nothing)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.testclient import TestClient

from service.keys import manager, policy
from service.oauth import clients

KEYS = "/v1/realms/default/jwt_keys"


def jwk(kid: str, key: rsa.RSAPrivateKey | None = None) -> dict[str, Any]:
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    members: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)  # type: ignore[assignment]
    return {**members, "kid": kid}


@pytest.fixture(scope="module")
def eleven() -> list[dict[str, Any]]:
    return [jwk(f"k{i}") for i in range(11)]


def register(client: TestClient, admin: dict[str, str], keys: list[dict[str, Any]]) -> Any:
    return client.post(
        "/oauth/register",
        json={"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": keys}},
        headers=admin,
    )


def test_keys_per_client(
    client: TestClient, admin: dict[str, str], eleven: list[dict[str, Any]]
) -> None:
    response = register(client, admin, eleven)
    assert response.status_code == 400, response.text
    assert "10 keys at most" in response.json()["error_description"]
    assert register(client, admin, eleven[:10]).status_code == 201


def test_the_same_key_twice_in_one_set(client: TestClient, admin: dict[str, str]) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = register(client, admin, [jwk("a", key), jwk("b", key)])
    assert response.status_code == 400, response.text
    assert "same key" in response.json()["error_description"]


def test_keys_per_realm(
    client: TestClient,
    admin: dict[str, str],
    eleven: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = len(client.get(KEYS, headers=admin).json()["data"])
    monkeypatch.setattr(policy, "MAX_KEYS_PER_REALM", before + 1)
    upload = client.post(KEYS, json={"algo": "rs256", "public_key": eleven[0]}, headers=admin)
    assert upload.status_code == 201, upload.text
    for body in ({"algo": "rs256", "public_key": eleven[1]}, {"algo": "es256"}):
        refused = client.post(KEYS, json=body, headers=admin)
        assert refused.status_code == 409, refused.text
        assert str(before + 1) in refused.json()["detail"]
    assert len(client.get(KEYS, headers=admin).json()["data"]) == before + 1
    # Rotation is never refused by the limit: the realm must always be able to rotate.
    rotated = client.post(
        f"{KEYS}/rotate", json={"algo": "rs256", "immediate": True}, headers=admin
    )
    assert rotated.status_code in (200, 201), rotated.text


def test_clients_per_realm(
    client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clients, "MAX_CLIENTS_PER_REALM", 2)
    for _ in range(2):
        assert client.post("/oauth/register", json={}, headers=admin).status_code == 201
    refused = client.post("/oauth/register", json={}, headers=admin)
    assert refused.status_code == 400, refused.text
    assert "2 clients" in refused.json()["error_description"]
    listed = client.get("/v1/realms/default/clients", headers=admin).json()["data"]
    assert len(listed) == 2


def test_realms_per_store(
    client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager, "MAX_REALMS", 2)  # default and one more
    assert client.post("/v1/realms", json={"name": "one"}, headers=admin).status_code == 201
    refused = client.post("/v1/realms", json={"name": "two"}, headers=admin)
    assert refused.status_code == 409, refused.text
    assert "2 realms" in refused.json()["detail"]
    assert client.get("/v1/realms/two", headers=admin).status_code == 404


def test_request_body_and_jwks_upload(client: TestClient, admin: dict[str, str]) -> None:
    huge = {"algo": "rs256", "public_key": {**jwk("big"), "x-padding": "p" * 70_000}}
    refused = client.post(KEYS, json=huge, headers=admin)
    assert refused.status_code == 413, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "64 KiB" in refused.json()["detail"]
    registered = client.post("/oauth/register", json={"x": "p" * 70_000}, headers=admin)
    assert registered.status_code == 413 and registered.json()["error"] == "invalid_request"
