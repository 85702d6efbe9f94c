"""The /v1 admin API: authentication, realms, key listing, deletion, limits, health."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import jwt
import redis
from starlette.testclient import TestClient

from service.app import create_app
from service.clock import SystemClock
from service.config import Settings
from service.keys import AdminKeys
from service.storage.embedded import EmbeddedServer, find_server_binary
from service.storage.redis import connect
from tests.conftest import KEK

PROBLEM = "application/problem+json"


def assert_problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status and body["title"] and str(body["type"]).startswith("tag:")
    return body


def test_missing_or_bad_admin_key_is_401(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}):
        response = client.get("/v1/realms", headers=headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_realm_lifecycle(
    client: TestClient, admin: dict[str, str], redis_client: redis.Redis
) -> None:
    created = client.post("/v1/realms", json={"name": "acme-1"}, headers=admin)
    assert created.status_code == 201
    assert created.json()["jwks_uri"] == "http://testserver/realms/acme-1/.well-known/jwks.json"
    assert_problem(client.post("/v1/realms", json={"name": "acme-1"}, headers=admin), 409)
    names = [r["name"] for r in client.get("/v1/realms", headers=admin).json()["data"]]
    assert names == ["acme-1", "default"]
    keys = client.get("/v1/realms/acme-1/jwt_keys", headers=admin).json()["data"]
    assert [(k["algo"], k["status"]) for k in keys] == [("rs256", "active")]
    assert client.delete("/v1/realms/acme-1", headers=admin).status_code == 204
    assert_problem(client.get("/realms/acme-1/.well-known/jwks.json"), 404)
    assert_problem(client.delete("/v1/realms/acme-1", headers=admin), 404)
    assert not [k for k in redis_client.scan_iter() if "{acme-1}" in k]


def test_bad_realm_names_store_nothing(
    client: TestClient, admin: dict[str, str], redis_client: redis.Redis
) -> None:
    # Rate-limit counters (the admin key's) are not realm data.
    def stored() -> set[str]:
        return {k for k in redis_client.scan_iter() if ":quota:" not in k}

    before = stored()
    for body in (
        {"name": "Acme"},
        {"name": ""},
        {"name": "a" * 65},
        {"name": "a_b"},
        {"name": 5},
        {},
    ):
        problem = assert_problem(client.post("/v1/realms", json=body, headers=admin), 400)
        assert problem["field"] == "name"
    assert stored() == before


def scoped_key(settings: Settings, realm: str) -> dict[str, str]:
    """Headers with a new admin key scoped to ``realm`` (made as the CLI makes it)."""

    async def create() -> str:
        store = connect(str(settings.redis_url))
        try:
            _key, secret = await AdminKeys(store, SystemClock()).create(realm)
            return secret
        finally:
            await store.close()

    return {"Authorization": f"Bearer {asyncio.run(create())}"}


def test_realm_scoped_admin_key(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    client.post("/v1/realms", json={"name": "acme"}, headers=admin)
    client.post("/v1/realms", json={"name": "other"}, headers=admin)
    scoped = scoped_key(settings, "acme")
    assert [r["name"] for r in client.get("/v1/realms", headers=scoped).json()["data"]] == ["acme"]
    assert client.get("/v1/realms/acme/jwt_keys", headers=scoped).status_code == 200
    assert (
        client.post("/v1/realms/acme/jwt_keys", json={"algo": "es256"}, headers=scoped).status_code
        == 201
    )
    for method, path in (
        ("GET", "/v1/realms/other/jwt_keys"),
        ("GET", "/v1/realms/other"),
        ("POST", "/v1/realms/other/jwt_keys"),
        ("DELETE", "/v1/realms/other"),
    ):
        assert_problem(client.request(method, path, json={"algo": "es256"}, headers=scoped), 404)
    assert_problem(client.post("/v1/realms", json={"name": "mine"}, headers=scoped), 403)
    assert client.get("/v1/realms/other", headers=admin).status_code == 200


def test_a_realm_scoped_key_does_not_outlive_its_realm(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    """After DELETE and a new POST of the same name, the old key manages nothing."""
    assert client.post("/v1/realms", json={"name": "acme"}, headers=admin).status_code == 201
    old = scoped_key(settings, "acme")
    assert client.get("/v1/realms/acme", headers=old).status_code == 200
    assert client.delete("/v1/realms/acme", headers=admin).status_code == 204
    assert client.post("/v1/realms", json={"name": "acme"}, headers=admin).status_code == 201
    for method, path, body in (
        ("GET", "/v1/realms", None),
        ("GET", "/v1/realms/acme", None),
        ("PATCH", "/v1/realms/acme", {"rotation_interval": 0}),
        ("GET", "/v1/realms/acme/jwt_keys", None),
        ("POST", "/v1/realms/acme/jwt_keys", {"algo": "es256"}),
        ("POST", "/v1/realms/acme/jwt_keys/rotate", {"immediate": True}),
        ("GET", "/v1/realms/acme/clients", None),
        ("DELETE", "/v1/realms/acme", None),
    ):
        assert_problem(client.request(method, path, json=body, headers=old), 401)
    registered = client.post("/realms/acme/oauth/register", json={}, headers=old)
    assert registered.status_code == 401 and registered.json()["error"] == "invalid_token"
    assert client.get("/v1/realms/acme/clients", headers=admin).json()["data"] == []
    keys = client.get("/v1/realms/acme/jwt_keys", headers=admin).json()["data"]
    assert [(k["algo"], k["status"]) for k in keys] == [("rs256", "active")]  # untouched
    # A key made for the new realm works, as before.
    assert client.get("/v1/realms/acme", headers=scoped_key(settings, "acme")).status_code == 200


def test_the_default_realm_cannot_be_deleted(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    for headers in (admin, scoped_key(settings, "default")):
        problem = assert_problem(client.delete("/v1/realms/default", headers=headers), 409)
        assert "default realm cannot be deleted" in str(problem["detail"])
    assert client.get("/.well-known/jwks.json").status_code == 200
    assert client.get("/.well-known/openid-configuration").status_code == 200
    assert client.get("/v1/realms/default", headers=admin).status_code == 200


KEYS = "/v1/realms/default/jwt_keys"


def _hs256_keys(client: TestClient, admin: dict[str, str]) -> list[dict[str, object]]:
    keys = client.get(f"{KEYS}?limit=100", headers=admin).json()["data"]
    return [k for k in keys if k["algo"] == "hs256"]


def test_hs256_rotation_returns_the_new_secret_once(
    client: TestClient, admin: dict[str, str]
) -> None:
    """Immediate rotation hands out the secret that now signs, as creation does."""
    created = client.post(KEYS, json={"algo": "hs256"}, headers=admin)
    assert created.status_code == 201 and created.headers["cache-control"] == "no-store"
    rotated = client.post(
        f"{KEYS}/rotate", json={"algo": "hs256", "immediate": True}, headers=admin
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    new = rotated.json()
    assert (new["algo"], new["status"]) == ("hs256", "active")
    assert new["key"] and new["key"] != created.json()["key"]
    assert "key" not in client.get(f"{KEYS}/{new['id']}", headers=admin).json()  # only once
    statuses = {k["id"]: k["status"] for k in _hs256_keys(client, admin)}
    assert statuses == {new["id"]: "active", created.json()["id"]: "expired"}
    # The secret returned is the one the server now signs HS256 access tokens with.
    reg = client.post(
        "/oauth/register", json={"access_token_signed_response_alg": "HS256"}, headers=admin
    ).json()
    token = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(reg["client_id"], reg["client_secret"]),
    ).json()["access_token"]
    assert jwt.get_unverified_header(token)["kid"] == new["kid"]
    claims = jwt.decode(token, new["key"], algorithms=["HS256"], audience="http://testserver")
    assert claims["client_id"] == reg["client_id"]


def test_no_hs256_secret_is_made_that_nobody_receives(
    client: TestClient, admin: dict[str, str]
) -> None:
    """A next HS256 key (rotate without immediate) and a replacement on DELETE would be
    secrets no verifier has: both are refused, with what to do instead."""
    active = client.post(KEYS, json={"algo": "hs256"}, headers=admin).json()
    later = client.post(f"{KEYS}/rotate", json={"algo": "hs256"}, headers=admin)
    assert "immediate=true" in str(assert_problem(later, 409)["detail"])
    assert "retry-after" not in later.headers
    for query in ("", "?force=true"):
        refused = client.delete(f"{KEYS}/{active['id']}{query}", headers=admin)
        assert "rotate first" in str(assert_problem(refused, 409)["detail"])
    assert [(k["id"], k["status"]) for k in _hs256_keys(client, admin)] == [
        (active["id"], "active")
    ]
    # Rotated first, the old key retires and can then be deleted.
    rotated = client.post(
        f"{KEYS}/rotate", json={"algo": "hs256", "immediate": True}, headers=admin
    )
    assert rotated.status_code == 200
    deleted = client.delete(f"{KEYS}/{active['id']}?force=true", headers=admin)
    assert deleted.status_code == 202
    assert [k["id"] for k in _hs256_keys(client, admin)] == [rotated.json()["id"]]


def test_key_listing_pages(client: TestClient, admin: dict[str, str]) -> None:
    for _ in range(4):
        assert (
            client.post(
                "/v1/realms/default/jwt_keys", json={"algo": "eddsa"}, headers=admin
            ).status_code
            == 201
        )
    seen: list[str] = []
    cursor = None
    while True:
        url = "/v1/realms/default/jwt_keys?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=admin).json()
        seen += [k["id"] for k in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 == len(set(seen))
    for bad in ("limit=0", "limit=101", "limit=x", "cursor=bogus"):
        problem = assert_problem(
            client.get(f"/v1/realms/default/jwt_keys?{bad}", headers=admin), 400
        )
        assert problem["field"] == bad.split("=")[0]


def test_delete_key_expires_it_and_replaces_the_signer(
    client: TestClient, admin: dict[str, str]
) -> None:
    (first,) = client.get("/v1/realms/default/jwt_keys", headers=admin).json()["data"]
    deleted = client.delete(f"/v1/realms/default/jwt_keys/{first['id']}", headers=admin)
    assert deleted.status_code == 202
    body = deleted.json()
    assert body["status"] == "expired" and body["expired"] is True and body["expires_at"]
    keys = client.get("/v1/realms/default/jwt_keys", headers=admin).json()["data"]
    assert [k["status"] for k in keys] == ["active", "expired"]
    kids = [k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]]
    assert kids == [keys[0]["kid"], first["kid"]]  # still published during the grace
    # Force: gone from the key API and the JWKS at once.
    forced = client.delete(f"/v1/realms/default/jwt_keys/{first['id']}?force=true", headers=admin)
    assert forced.status_code == 202
    assert_problem(client.get(f"/v1/realms/default/jwt_keys/{first['id']}", headers=admin), 404)
    assert [k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]] == [
        keys[0]["kid"]
    ]
    assert_problem(client.delete("/v1/realms/default/jwt_keys/jky_nope", headers=admin), 404)
    assert_problem(
        client.delete(f"/v1/realms/default/jwt_keys/{keys[0]['id']}?force=maybe", headers=admin),
        400,
    )


def test_body_over_64_kib_is_413(client: TestClient, admin: dict[str, str]) -> None:
    big = {"name": "x", "pad": "a" * 70_000}
    assert_problem(client.post("/v1/realms", json=big, headers=admin), 413)

    def chunks() -> object:
        for _ in range(70):
            yield b"a" * 1024

    response = client.post("/v1/realms", content=chunks(), headers=admin)  # type: ignore[arg-type]
    assert_problem(response, 413)


def test_unknown_route_and_method_are_problems(client: TestClient, admin: dict[str, str]) -> None:
    assert_problem(client.get("/v1/nothing", headers=admin), 404)
    assert_problem(client.put("/v1/realms", headers=admin), 405)


def test_health(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_store_outage_is_503_and_jwks_keeps_serving(tmp_path: Path, admin: dict[str, str]) -> None:
    server = EmbeddedServer(tmp_path / "v", find_server_binary())
    server.start()
    settings = Settings(
        redis_url=server.url,
        data_dir=tmp_path / "d",
        bootstrap_admin_key=admin["Authorization"].removeprefix("Bearer "),
        kek=base64.b64decode(KEK),
    )
    try:
        with TestClient(create_app(settings)) as c:
            jwks = c.get("/.well-known/jwks.json")
            server.stop()
            assert c.get("/healthz").status_code == 200
            # Still ready: it serves from memory (tests/http/test_readiness.py has more).
            ready = c.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["store"] in ("down", "slow")
            again = c.get("/.well-known/jwks.json")  # served from the in-process cache
            assert again.status_code == 200 and again.content == jwks.content
            assert_problem(c.post("/v1/realms", json={"name": "x"}, headers=admin), 503)
            token = c.post(
                "/oauth/token",
                data={"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"},
            )
            assert token.status_code == 503 and token.headers["retry-after"] == "1"
            assert token.json()["error"] == "temporarily_unavailable"
    finally:
        server.stop()


def test_realm_rotation_interval_override(client: TestClient, admin: dict[str, str]) -> None:
    client.post("/v1/realms", json={"name": "acme"}, headers=admin)
    assert client.get("/v1/realms/acme", headers=admin).json()["rotation_interval"] is None
    patched = client.patch("/v1/realms/acme", json={"rotation_interval": 86_400}, headers=admin)
    assert patched.status_code == 200 and patched.json()["rotation_interval"] == 86_400
    assert client.get("/v1/realms/acme", headers=admin).json()["rotation_interval"] == 86_400
    for bad in (
        {"rotation_interval": 100},
        {"rotation_interval": "1d"},
        {"rotation_interval": True},
        {"interval": 5},
    ):
        assert_problem(client.patch("/v1/realms/acme", json=bad, headers=admin), 400)
    assert (
        client.patch("/v1/realms/acme", json={"rotation_interval": None}, headers=admin).json()[
            "rotation_interval"
        ]
        is None
    )
    assert_problem(client.patch("/v1/realms/nope", json={}, headers=admin), 404)
