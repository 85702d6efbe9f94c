"""Audit events: every change under /v1 (and registration, and the CLI's admin keys)
is recorded in its realm's capped stream and in the ``service.audit`` log, with
the admin key's id (never a secret) and the client address; listed newest first."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from starlette.testclient import TestClient

from service.audit import CLI, EVENT_TYPES
from service.clock import SystemClock, rfc3339
from service.config import Settings
from service.keys import AdminKeys
from service.storage.redis import connect
from tests.conftest import ADMIN_KEY, KEK, FakeClock
from tests.test_cli import cli_env, run_cli

PROBLEM = "application/problem+json"
#: The client address Starlette's TestClient reports.
ADDRESS = "testclient"


def admin_key(settings: Settings, realm: str | None = None) -> tuple[str, str]:
    """A new admin key (id, secret), made as ``jwks-service admin-key create`` makes it."""

    async def create() -> tuple[str, str]:
        store = connect(str(settings.redis_url))
        try:
            key, secret = await AdminKeys(store, SystemClock()).create(realm, actor=CLI)
            return key.id, secret
        finally:
            await store.close()

    return asyncio.run(create())


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def public_jwk(kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(
        ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True
    )
    return {**jwk, "kid": kid}


def all_events(client: TestClient, path: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every event at ``path``, one page of 100."""
    response = client.get(f"{path}?limit=100", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    events: list[dict[str, Any]] = body["data"]
    return events


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        r.event  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "service.audit" and r.levelno == logging.INFO
    ]


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    return body


def test_every_change_emits_its_event_newest_first_and_no_secret(
    make_client: Callable[..., TestClient],
    settings: Settings,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="service.audit")
    clock = FakeClock()
    client = make_client(clock=clock)
    admin_id, secret = admin_key(settings)
    admin = bearer(secret)
    keys = "/v1/realms/acme/jwt_keys"
    secrets = [secret, ADMIN_KEY]
    expected: list[tuple[str, str | None]] = []  # (type, subject), oldest first

    assert client.post("/v1/realms", json={"name": "acme"}, headers=admin).status_code == 201
    (first,) = client.get(keys, headers=admin).json()["data"]
    expected += [("realm.created", None), ("key.created", first["id"])]

    patched = client.patch("/v1/realms/acme", json={"rotation_interval": 0}, headers=admin)
    assert patched.status_code == 200
    expected.append(("realm.updated", None))

    hs256 = client.post(keys, json={"algo": "hs256"}, headers=admin).json()
    secrets.append(hs256["key"])
    expected.append(("key.created", hs256["id"]))

    upload = {"algo": "es256", "public_key": public_jwk("tenant-1")}
    uploaded = client.post(keys, json=upload, headers=admin).json()
    expected.append(("key.uploaded", uploaded["id"]))

    # No next key yet: one is published (key.created) and the promotion waits.
    assert client.post(f"{keys}/rotate", json={"algo": "rs256"}, headers=admin).status_code == 409
    (upcoming,) = [
        k for k in client.get(keys, headers=admin).json()["data"] if k["status"] == "next"
    ]
    expected.append(("key.created", upcoming["id"]))
    clock.advance(400)
    rotated = client.post(f"{keys}/rotate", json={"algo": "rs256"}, headers=admin)
    assert rotated.status_code == 200 and rotated.json()["id"] == upcoming["id"]
    (later,) = [k for k in client.get(keys, headers=admin).json()["data"] if k["status"] == "next"]
    expected += [
        ("key.expired", first["id"]),
        ("key.rotated", upcoming["id"]),
        ("key.created", later["id"]),
    ]

    immediate = {"algo": "hs256", "immediate": True}
    new_hs256 = client.post(f"{keys}/rotate", json=immediate, headers=admin).json()
    secrets.append(new_hs256["key"])
    expected += [("key.expired", hs256["id"]), ("key.rotated", new_hs256["id"])]

    assert client.delete(f"{keys}/{uploaded['id']}", headers=admin).status_code == 202
    assert client.delete(f"{keys}/{uploaded['id']}?force=true", headers=admin).status_code == 202
    expected += [("key.expired", uploaded["id"]), ("key.deleted", uploaded["id"])]

    registered = client.post("/realms/acme/oauth/register", json={}, headers=admin).json()
    secrets.append(registered["client_secret"])
    expected.append(("client.registered", registered["client_id"]))
    signed = {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [public_jwk("a")]}}
    jwt_client = client.post("/realms/acme/oauth/register", json=signed, headers=admin).json()
    expected.append(("client.registered", jwt_client["client_id"]))
    url = f"/v1/realms/acme/clients/{jwt_client['client_id']}/jwks"
    assert client.put(url, json={"keys": [public_jwk("b")]}, headers=admin).status_code == 200
    expected.append(("client.jwks_replaced", jwt_client["client_id"]))
    url = f"/v1/realms/acme/clients/{registered['client_id']}"
    assert client.delete(url, headers=admin).status_code == 204
    expected.append(("client.deleted", registered["client_id"]))

    events = all_events(client, "/v1/realms/acme/events", admin)
    assert [(e["type"], e["subject"]) for e in events] == expected[::-1]
    for event in events:
        assert event["actor"] == admin_id and event["address"] == ADDRESS
        assert event["realm"] == "acme" and event["id"].startswith("evt_")
        assert event["type"] in EVENT_TYPES
    by_type = {e["type"]: e for e in events}
    assert by_type["realm.updated"]["details"] == {"rotation_interval": 0}
    assert by_type["key.uploaded"]["details"]["kid"] == "tenant-1"
    assert by_type["client.jwks_replaced"]["details"] == {"kids": "b"}
    assert events[-1]["at"] == rfc3339(clock.now() - 400)  # when, by the service's clock
    hs256_rotation = next(e for e in events if e["subject"] == new_hs256["id"])
    assert hs256_rotation["details"]["previous"] == hs256["id"]

    # The same events, each one line of the service.audit log with the same fields.
    logged = {e["id"]: e for e in audit_lines(caplog) if e["realm"] == "acme"}
    assert logged == {e["id"]: e for e in events}

    # Never a secret: not in the API's events, not in the log, not in the stream.
    stream = json.dumps(redis_client.xrange("jwks:{acme}:events"))
    for text in (json.dumps(events), caplog.text, stream):
        for made in secrets:
            assert made not in text
        assert "sealed_secret" not in text and "client_secret_hash" not in text


def test_realm_lifecycle_and_admin_keys_in_the_global_stream(
    client: TestClient, settings: Settings, redis_client: redis.Redis
) -> None:
    admin_id, secret = admin_key(settings)
    admin = bearer(secret)
    assert client.post("/v1/realms", json={"name": "acme"}, headers=admin).status_code == 201
    scoped_id, _scoped = admin_key(settings, "acme")
    (made,) = all_events(client, "/v1/realms/acme/events", admin)[:1]
    assert (made["type"], made["subject"], made["actor"]) == ("admin_key.created", scoped_id, "cli")
    assert made["details"] == {"scope": "acme"} and made["address"] is None

    assert redis_client.exists("jwks:{acme}:events")
    assert client.delete("/v1/realms/acme", headers=admin).status_code == 204
    # The realm's stream went with it, and so did every other key of its slot.
    assert not [k for k in redis_client.scan_iter() if "{acme}" in k]
    assert_problem(client.get("/v1/realms/acme/events", headers=admin), 404)

    events = all_events(client, "/v1/events", admin)
    summary = [(e["type"], e["realm"], e["actor"], e["address"]) for e in events]
    assert summary == [
        ("realm.deleted", "acme", admin_id, ADDRESS),
        ("realm.created", "acme", admin_id, ADDRESS),
        ("admin_key.created", None, "cli", None),  # the global key this test made
        ("realm.created", "default", "system", None),  # made at start-up
    ]
    assert events[2]["subject"] == admin_id and events[2]["details"] == {"scope": "global"}


def test_pages_newest_first_with_a_cursor(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post("/v1/realms", json={"name": "acme"}, headers=admin).status_code == 201
    for interval in range(1000, 1007):
        body = {"rotation_interval": interval}
        assert client.patch("/v1/realms/acme", json=body, headers=admin).status_code == 200
    everything = all_events(client, "/v1/realms/acme/events", admin)
    assert len(everything) == 9
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
        page = client.get(f"/v1/realms/acme/events{query}", headers=admin).json()
        assert len(page["data"]) <= 2
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything
    intervals = [e["details"]["rotation_interval"] for e in everything[:7]]
    assert intervals == list(range(1006, 999, -1))  # newest first
    bad = assert_problem(client.get("/v1/realms/acme/events?cursor=nope", headers=admin), 400)
    assert bad["field"] == "cursor"
    assert_problem(client.get("/v1/realms/acme/events?limit=0", headers=admin), 400)


def test_the_cap_holds(make_client: Callable[..., TestClient], redis_client: redis.Redis) -> None:
    client = make_client(audit_max_events=3)
    admin = bearer(ADMIN_KEY)
    assert client.post("/v1/realms", json={"name": "acme"}, headers=admin).status_code == 201
    for interval in (1000, 2000, 3000, 4000):
        body = {"rotation_interval": interval}
        assert client.patch("/v1/realms/acme", json=body, headers=admin).status_code == 200
    events = all_events(client, "/v1/realms/acme/events", admin)
    assert [e["details"]["rotation_interval"] for e in events] == [4000, 3000, 2000]
    assert redis_client.xlen("jwks:{acme}:events") == 3
    assert redis_client.xlen("jwks:events") <= 3


def test_events_are_realm_scoped(
    client: TestClient, admin: dict[str, str], settings: Settings
) -> None:
    for name in ("acme", "other"):
        assert client.post("/v1/realms", json={"name": name}, headers=admin).status_code == 201
    _id, scoped = admin_key(settings, "acme")
    mine = all_events(client, "/v1/realms/acme/events", bearer(scoped))
    assert {e["realm"] for e in mine} == {"acme"}
    for path in ("/v1/realms/other/events", "/v1/realms/default/events"):
        assert_problem(client.get(path, headers=bearer(scoped)), 404)
    assert_problem(client.get("/v1/events", headers=bearer(scoped)), 403)
    assert_problem(client.get("/v1/realms/nope/events", headers=admin), 404)
    assert_problem(client.get("/v1/realms/Not_A_Realm/events", headers=admin), 404)
    for path in ("/v1/events", "/v1/realms/acme/events"):
        assert_problem(client.get(path), 401)
    others = all_events(client, "/v1/realms/other/events", admin)
    assert {e["realm"] for e in others} == {"other"}


def test_a_failed_change_emits_nothing(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post("/v1/realms", json={"name": "acme"}, headers=admin).status_code == 201
    before = all_events(client, "/v1/realms/acme/events", admin)
    assert_problem(client.post("/v1/realms", json={"name": "acme"}, headers=admin), 409)
    bad = {"rotation_interval": 1}
    assert_problem(client.patch("/v1/realms/acme", json=bad, headers=admin), 400)
    assert_problem(client.delete("/v1/realms/acme/jwt_keys/jky_nope", headers=admin), 404)
    assert all_events(client, "/v1/realms/acme/events", admin) == before


def test_the_actor_is_the_admin_key_and_the_address(client: TestClient, settings: Settings) -> None:
    """The bootstrap key acts as ``bootstrap``; any other by its id."""
    _id, secret = admin_key(settings)
    assert client.post("/v1/realms", json={"name": "acme"}, headers=bearer(ADMIN_KEY)).is_success
    events = all_events(client, "/v1/realms/acme/events", bearer(secret))
    assert {(e["actor"], e["address"]) for e in events} == {("bootstrap", ADDRESS)}


def test_the_command_line_acts_as_cli(
    client: TestClient, admin: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    assert client.post("/v1/realms", json={"name": "acme"}, headers=admin).status_code == 201
    env = cli_env(tmp_path / "data", JWKS_REDIS_URL=redis_url, JWKS_KEK=KEK)
    made = run_cli("admin-key", "create", "--realm", "acme", env=env)
    assert made.returncode == 0, made.stderr
    rotated = run_cli("rotate", "--realm", "acme", "--immediate", env=env)
    assert rotated.returncode == 0, rotated.stderr
    events = all_events(client, "/v1/realms/acme/events", admin)
    summary = [(e["type"], e["actor"], e["address"]) for e in events[:3]]
    assert summary == [
        ("key.rotated", "cli", None),
        ("key.expired", "cli", None),
        ("admin_key.created", "cli", None),
    ]
    assert made.stdout.strip() not in json.dumps(events)
