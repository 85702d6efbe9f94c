"""Issue 9: ``curl --data-binary @k.pub`` uploads the key file itself, a non-JSON body is
told what the body must be, and the same public key uploaded twice is a 409."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.testclient import TestClient

from tests.http.test_admin_keys_upload import (
    JWKS_URL,
    KEYS_URL,
    assert_problem,
    published,
    snapshot,
)

PEM_FILE = "application/x-pem-file"
#: What curl sends with --data-binary and no -H.
CURL_DEFAULT = "application/x-www-form-urlencoded"


def spki_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    """The public PEM ``openssl rsa -pubout`` / ``openssl ec -pubout`` writes."""
    return (
        key.public_key()
        .public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_pem() -> str:
    return spki_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def ec_pem() -> str:
    return spki_pem(ec.generate_private_key(ec.SECP256R1()))


def post_pem(
    client: TestClient, admin: dict[str, str], pem: str, media: str = PEM_FILE, query: str = ""
) -> Any:
    return client.post(
        f"{KEYS_URL}{query}", content=pem.encode(), headers={**admin, "Content-Type": media}
    )


# A key file as the body --------------------------------------------------------


@pytest.mark.parametrize(
    "media", [PEM_FILE, "text/plain", "text/plain; charset=utf-8", "Application/X-PEM-File"]
)
def test_a_pem_body_is_an_upload_of_that_key(
    client: TestClient, admin: dict[str, str], rsa_pem: str, media: str
) -> None:
    """The body is the public key; the algo is inferred, the key published verify_only."""
    response = post_pem(client, admin, rsa_pem, media)
    assert response.status_code == 201, response.text
    key = response.json()
    assert (key["status"], key["algo"]) == ("verify_only", "rs256")
    assert published(client, key["kid"]) == key["public_jwk"]


def test_curl_data_binary_without_a_content_type_uploads_the_pem(
    client: TestClient, admin: dict[str, str], ec_pem: str
) -> None:
    """``curl --data-binary @k.pub`` says form-urlencoded: a body that is PEM is still PEM."""
    response = post_pem(client, admin, ec_pem, CURL_DEFAULT)
    assert response.status_code == 201, response.text
    assert response.json()["algo"] == "es256"


def test_a_pem_body_takes_the_other_fields_from_the_query(
    client: TestClient, admin: dict[str, str], ec_pem: str
) -> None:
    response = post_pem(client, admin, ec_pem, query="?kid=tenant-1&name=Tenant&algo=es256")
    assert response.status_code == 201, response.text
    key = response.json()
    assert (key["kid"], key["name"], key["algo"]) == ("tenant-1", "Tenant", "es256")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?algo=rs256", "public_key"),
        ("?algo=ES256", "algo"),
        ("?key=x", "key"),
        ("?kid=a%20b", "kid"),
    ],
)
def test_a_pem_body_with_bad_query_fields_is_400_and_stores_nothing(
    client: TestClient,
    admin: dict[str, str],
    redis_client: redis.Redis,
    ec_pem: str,
    query: str,
    field: str,
) -> None:
    before = snapshot(client, admin, redis_client)
    assert_problem(post_pem(client, admin, ec_pem, query=query), 400, field)
    assert snapshot(client, admin, redis_client) == before


def test_a_body_that_is_not_a_key_file_is_400_naming_public_key(
    client: TestClient, admin: dict[str, str], redis_client: redis.Redis
) -> None:
    before = snapshot(client, admin, redis_client)
    for body in (b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", b"\xff\xfe"):
        response = client.post(KEYS_URL, content=body, headers={**admin, "Content-Type": PEM_FILE})
        assert_problem(response, 400, "public_key")
    assert snapshot(client, admin, redis_client) == before


# What a non-JSON body is told ---------------------------------------------------


@pytest.mark.parametrize("media", ["application/json", CURL_DEFAULT, None])
def test_a_non_json_body_is_told_what_the_body_must_be(
    client: TestClient,
    admin: dict[str, str],
    redis_client: redis.Redis,
    rsa_pem: str,
    media: str | None,
) -> None:
    """A PEM sent as JSON, or a form, is not taken for a key: the error says what to send."""
    before = snapshot(client, admin, redis_client)
    body = rsa_pem if media == "application/json" else "algo=rs256"
    headers = {**admin, **({"Content-Type": media} if media else {})}
    response = client.post(KEYS_URL, content=body.encode(), headers=headers)
    detail = assert_problem(response, 400, None)["detail"]
    assert "JSON object" in detail and PEM_FILE in detail
    assert snapshot(client, admin, redis_client) == before


def test_other_endpoints_keep_their_json_error(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(
        "/v1/realms", content=b"-----BEGIN", headers={**admin, "Content-Type": PEM_FILE}
    )
    assert assert_problem(response, 400, None)["detail"] == "the body is not valid JSON"


# The same key twice ---------------------------------------------------------------


def test_the_same_public_key_uploaded_twice_is_409_naming_the_first(
    client: TestClient, admin: dict[str, str], redis_client: redis.Redis, rsa_pem: str
) -> None:
    """Whatever form and kid it comes in, a second copy is refused: the JWKS has one."""
    first = post_pem(client, admin, rsa_pem)
    assert first.status_code == 201, first.text
    key = first.json()
    jwk = {m: key["public_jwk"][m] for m in ("kty", "n", "e")}
    before = snapshot(client, admin, redis_client)
    for again in (
        post_pem(client, admin, rsa_pem),
        post_pem(client, admin, rsa_pem, CURL_DEFAULT, "?kid=other"),
        client.post(KEYS_URL, json={"public_key": rsa_pem, "kid": "another"}, headers=admin),
        client.post(KEYS_URL, json={"public_key": jwk}, headers=admin),
        client.post(KEYS_URL, json={"public_key": json.dumps(jwk)}, headers=admin),
    ):
        problem = assert_problem(again, 409, None)
        assert key["id"] in problem["detail"]
    assert snapshot(client, admin, redis_client) == before
    assert [k["n"] for k in client.get(JWKS_URL).json()["keys"] if k["kty"] == "RSA"].count(
        key["public_jwk"]["n"]
    ) == 1


def test_uploading_a_generated_keys_public_half_is_409(
    client: TestClient, admin: dict[str, str]
) -> None:
    active = next(
        k for k in client.get(KEYS_URL, headers=admin).json()["data"] if k["status"] == "active"
    )
    public = {m: v for m, v in active["public_jwk"].items() if m not in ("kid", "alg", "use")}
    problem = assert_problem(
        client.post(KEYS_URL, json={"public_key": public}, headers=admin), 409, None
    )
    assert active["id"] in problem["detail"]


def test_a_deleted_key_can_be_uploaded_again(
    client: TestClient, admin: dict[str, str], ec_pem: str
) -> None:
    """Only live keys count: once removed, the same key is a new upload."""
    first = post_pem(client, admin, ec_pem).json()
    deleted = client.delete(f"{KEYS_URL}/{first['id']}?force=true", headers=admin)
    assert deleted.status_code == 202, deleted.text
    again = post_pem(client, admin, ec_pem)
    assert again.status_code == 201, again.text
    assert again.json()["id"] != first["id"]
