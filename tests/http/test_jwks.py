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


def test_the_hot_path_answers_as_the_framework_route_does(client: TestClient) -> None:
    """GET is answered ahead of the framework from prebuilt messages; HEAD goes through
    the framework's route. Both carry the same headers, and only GET a body."""
    got = client.get("/.well-known/jwks.json")
    head = client.head("/.well-known/jwks.json")
    assert head.status_code == 200 and head.content == b""
    for name in ("content-type", "cache-control", "etag", "access-control-allow-origin"):
        assert got.headers[name] == head.headers[name], name
    assert got.headers["content-length"] == str(len(got.content))
    not_modified = client.get("/.well-known/jwks.json", headers={"If-None-Match": "*"})
    assert not_modified.status_code == 304
    assert "content-type" not in not_modified.headers


def test_other_methods_and_bad_realm_names_get_the_framework_answers(client: TestClient) -> None:
    post = client.post("/.well-known/jwks.json")
    assert post.status_code == 405 and post.headers["content-type"] == "application/problem+json"
    for path in ("/realms/NOPE/.well-known/jwks.json", "/realms//.well-known/jwks.json"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/problem+json"


def test_a_realm_deleted_elsewhere_stops_being_published(
    make_client: Callable[..., TestClient], admin: dict[str, str]
) -> None:
    a, b = make_client(), make_client()
    assert a.post("/v1/realms", json={"name": "gone"}, headers=admin).status_code == 201
    assert b.get("/realms/gone/.well-known/jwks.json").status_code == 200  # cached in b
    assert a.delete("/v1/realms/gone", headers=admin).status_code == 204
    import time

    deadline = time.monotonic() + 2.0
    while b.get("/realms/gone/.well-known/jwks.json").status_code == 200:
        assert time.monotonic() < deadline, "replica b kept publishing a deleted realm"
        time.sleep(0.02)
