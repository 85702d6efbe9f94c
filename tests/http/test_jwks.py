"""The JWKS endpoints: content, caching headers, ETag/304, per-realm documents."""

from __future__ import annotations

from collections.abc import Callable

from starlette.testclient import TestClient


def test_default_realm_publishes_its_rs256_key(client: TestClient) -> None:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwk-set+json"
    assert response.headers["cache-control"] == "public, max-age=300"
    (key,) = response.json()["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert key["kid"].startswith("jky_")
    assert set(key) == {"kty", "n", "e", "kid", "alg", "use"}


def test_etag_and_304(client: TestClient, admin: dict[str, str]) -> None:
    first = client.get("/.well-known/jwks.json")
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    again = client.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert (
        client.get("/.well-known/jwks.json", headers={"If-None-Match": '"other"'}).status_code
        == 200
    )
    # A change gives a new body and a new ETag; the old one no longer matches.
    client.post("/v1/realms/default/jwt_keys", json={"algo": "es256"}, headers=admin)
    changed = client.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert len(changed.json()["keys"]) == 2


def test_unknown_realm_is_404(client: TestClient) -> None:
    response = client.get("/realms/nope/.well-known/jwks.json")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_realm_jwks(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post("/v1/realms", json={"name": "acme"}, headers=admin).status_code == 201
    acme = client.get("/realms/acme/.well-known/jwks.json").json()["keys"]
    default = client.get("/.well-known/jwks.json").json()["keys"]
    assert len(acme) == 1 and acme[0]["kid"] != default[0]["kid"]


def test_other_replica_sees_change_through_pubsub(
    make_client: Callable[..., TestClient], admin: dict[str, str]
) -> None:
    a, b = make_client(), make_client()
    before = b.get("/.well-known/jwks.json").headers["etag"]  # cached in b
    a.post("/v1/realms/default/jwt_keys", json={"algo": "eddsa"}, headers=admin)
    import time

    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if b.get("/.well-known/jwks.json").headers["etag"] != before:
            break
        time.sleep(0.02)
    else:
        raise AssertionError("replica b still served the old JWKS after 1 s")
