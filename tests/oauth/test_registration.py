"""Client registration (RFC 7591): unknown metadata is ignored, known metadata checked.

Through ``POST /oauth/register`` and the admin clients API, and on ``new_client``
itself; what was stored is read back from the admin API and from Redis.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.testclient import TestClient

from service.oauth.errors import InvalidClientMetadata
from service.oauth.registration import new_client

NOW = 1_800_000_000.0
REGISTER = "/oauth/register"
CLIENTS = "/v1/realms/default/clients"

#: What registration tools and SDKs send besides the metadata we use (RFC 7591 §2,
#: §2.2 and §3.1.1), none of which this service understands.
UNKNOWN: dict[str, Any] = {
    "contacts": ["ops@example.com"],
    "logo_uri": "https://example.com/logo.png",
    "client_uri": "https://example.com",
    "policy_uri": "https://example.com/policy",
    "tos_uri": "https://example.com/tos",
    "software_id": "4NRB1-0XZABZI9E6-5SM3R",
    "software_version": "2.1",
    "software_statement": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
    "jwks_uri": "https://example.com/jwks.json",
    "x-vendor-extension": {"nested": [1, 2, 3]},
}


def b64url_int(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid}


def long_exponent_jwk(kid: str) -> dict[str, Any]:
    """An RSA public JWK with a 3000-bit odd e (and a 4096-bit n, since e < n)."""
    return {
        "kty": "RSA",
        "kid": kid,
        "n": b64url_int((1 << 4095) | 1),
        "e": b64url_int((1 << 2999) | 1),
    }


def stored_records(redis_client: redis.Redis, client_id: str) -> list[str]:
    """Every string value in the test server under a key that names the client."""
    return [
        str(redis_client.get(key))
        for key in redis_client.scan_iter(f"*{client_id}*")
        if redis_client.type(key) == "string"
    ]


def metadata_error(response: Any) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_client_metadata"
    description: str = body["error_description"]
    return description


# Unknown metadata: ignored ----------------------------------------------------------


def test_unknown_metadata_is_ignored_and_not_stored(
    client: TestClient, admin: dict[str, str], redis_client: redis.Redis
) -> None:
    metadata = {
        "client_name": "backend",
        "scope": "read",
        "token_endpoint_auth_method": "client_secret_post",
        "redirect_uris": [],
        **UNKNOWN,
    }
    response = client.post(REGISTER, json=metadata, headers=admin)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["client_name"] == "backend" and body["scope"] == "read"
    assert body["token_endpoint_auth_method"] == "client_secret_post"
    # RFC 7591 §3.2.1 returns what was registered: none of the ignored members.
    assert not set(body) & (set(UNKNOWN) | {"redirect_uris"})
    stored = client.get(f"{CLIENTS}/{body['client_id']}", headers=admin).json()
    assert not set(stored) & (set(UNKNOWN) | {"redirect_uris"})
    records = stored_records(redis_client, body["client_id"])
    assert records, "the client record was not found in the store"
    for record in records:
        for name, value in UNKNOWN.items():
            assert name not in record
            assert str(value) not in record
    # The client works as registered.
    token = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": body["client_id"],
            "client_secret": body["client_secret"],
        },
    )
    assert token.status_code == 200, token.text


@pytest.mark.parametrize("name", sorted(UNKNOWN))
def test_each_unknown_member_alone_is_ignored(
    client: TestClient, admin: dict[str, str], name: str
) -> None:
    response = client.post(REGISTER, json={name: UNKNOWN[name]}, headers=admin)
    assert response.status_code == 201, response.text
    assert name not in response.json()


def test_new_client_ignores_what_it_does_not_understand() -> None:
    plain, _ = new_client({"client_name": "x", "allowed_rooms": ["a-*"]}, now=NOW)
    noisy, _ = new_client({"client_name": "x", "allowed_rooms": ["a-*"], **UNKNOWN}, now=NOW)
    ids = ("client_id", "client_secret_hash")
    assert {k: v for k, v in vars(noisy).items() if k not in ids} == {
        k: v for k, v in vars(plain).items() if k not in ids
    }


# Known metadata: still checked ------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"client_name": 5}, "client_name"),
        ({"client_name": ""}, "client_name"),
        ({"scope": 'read "write"'}, "scope"),
        ({"grant_types": ["authorization_code"]}, "grant_types"),
        ({"response_types": ["code"]}, "response_types"),
        ({"redirect_uris": ["https://example.com/cb"]}, "redirect_uris"),
        ({"token_endpoint_auth_method": "client_secret_jwt"}, "token_endpoint_auth_method"),
        ({"token_profile": "saml"}, "token_profile"),
        ({"allowed_rooms": "lobby"}, "allowed_rooms"),
        ({"access_token_signed_response_alg": "none"}, "access_token_signed_response_alg"),
    ],
)
def test_understood_metadata_with_a_bad_value_is_refused(
    client: TestClient, admin: dict[str, str], metadata: dict[str, Any], field: str
) -> None:
    response = client.post(REGISTER, json={**UNKNOWN, **metadata}, headers=admin)
    assert metadata_error(response).startswith(f"{field}:")
    assert client.get(CLIENTS, headers=admin).json()["data"] == []
    with pytest.raises(InvalidClientMetadata):
        new_client({**UNKNOWN, **metadata}, now=NOW)


# RSA public exponent ----------------------------------------------------------------


def test_registration_refuses_a_3000_bit_rsa_exponent(
    client: TestClient, admin: dict[str, str], redis_client: redis.Redis
) -> None:
    metadata = {
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [long_exponent_jwk("big-e")]},
    }
    description = metadata_error(client.post(REGISTER, json=metadata, headers=admin))
    assert description == (
        "jwks.keys[0] has a 3000-bit RSA public exponent; e must be odd, "
        "from 3 to 2^32 - 1 (65537 is usual)"
    )
    assert client.get(CLIENTS, headers=admin).json()["data"] == []
    assert not [key for key in redis_client.scan_iter("*") if "jcl_" in str(key)]


def test_jwks_replacement_refuses_a_3000_bit_rsa_exponent(
    client: TestClient, admin: dict[str, str], rsa_key: rsa.RSAPrivateKey
) -> None:
    good = public_jwk(rsa_key, "k1")
    registered = client.post(
        REGISTER,
        json={"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [good]}},
        headers=admin,
    ).json()
    url = f"{CLIENTS}/{registered['client_id']}"
    replaced = client.put(
        f"{url}/jwks", json={"keys": [good, long_exponent_jwk("big-e")]}, headers=admin
    )
    assert replaced.status_code == 400, replaced.text
    assert "3000-bit RSA public exponent" in replaced.text
    assert client.get(url, headers=admin).json()["jwks"] == registered["jwks"]
