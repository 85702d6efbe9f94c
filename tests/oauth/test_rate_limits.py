"""Rate limits and failed-authentication lockouts at the token, introspection and admin
endpoints: 429 with ``Retry-After``, in the §5.2 format under an issuer and as
problem+json on the admin API.

Each app is one replica on the shared test server; a replica's TestClient has its
own client address, so two replicas stand for two callers. Windows are real Redis
TTLs: the tests that wait for one to end use a lockout of one second.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import rsa
from redis.asyncio.connection import AbstractConnection
from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.ratelimit import FLUSH_INTERVAL
from service.storage.embedded import EmbeddedServer, find_server_binary
from tests.oauth.test_token import assertion, assertion_form, register, register_key_client

FORM = {"grant_type": "client_credentials"}
#: Every limit off: each test turns on the ones it watches.
OFF = {
    "rate_token_per_client": 0,
    "rate_token_per_address": 0,
    "rate_introspect_per_client": 0,
    "rate_admin_per_key": 0,
    "auth_failures": 0,
    "auth_failures_per_address": 0,
}

Make = Callable[..., TestClient]


@pytest.fixture
def make_at(settings: Settings) -> Iterator[Make]:
    """``make_at(address, **settings)``: a running replica whose requests come from
    ``address``; replicas share the test server, and so its counters."""
    clients: list[TestClient] = []

    def make(address: str = "192.0.2.1", **overrides: Any) -> TestClient:
        s = Settings(**{**settings.__dict__, **OFF, **overrides})
        client = TestClient(create_app(s), client=(address, 50000))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in reversed(clients):
        c.__exit__(None, None, None)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def token(app: TestClient, reg: dict[str, Any], secret: str | None = None) -> int:
    """The status of a client_secret_basic token request (with ``secret``, if given)."""
    headers = basic(reg["client_id"], secret or reg["client_secret"])
    return app.post("/oauth/token", data=FORM, headers=headers).status_code


def assert_oauth_429(response: Any, retry_max: int) -> None:
    """RFC 6749 §5.2 body, ``temporarily_unavailable``, with a Retry-After to honour."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == "temporarily_unavailable"
    assert set(body) == {"error", "error_description"}
    assert 1 <= int(response.headers["retry-after"]) <= retry_max


# Failed authentications -----------------------------------------------------


def test_wrong_secrets_lock_the_client_id_out_without_more_guesses(
    make_at: Make, admin: dict[str, str]
) -> None:
    app = make_at(auth_failures=5, auth_lockout=60)
    reg = register(app, admin)
    statuses = [token(app, reg, "wrong") for _ in range(200)]
    assert statuses == [401] * 5 + [429] * 195
    locked = app.post("/oauth/token", data=FORM, headers=basic(reg["client_id"], "wrong"))
    assert_oauth_429(locked, 60)
    assert "failed authentications" in locked.json()["error_description"]
    # While locked, not even the right secret is compared (else it would tell right from wrong).
    assert token(app, reg) == 429
    # Another client id at the same address is not locked out.
    assert token(app, register(app, admin)) == 200


def test_the_right_secret_works_after_the_lockout_and_resets_the_count(
    make_at: Make, admin: dict[str, str]
) -> None:
    app = make_at(auth_failures=3, auth_lockout=1)
    reg = register(app, admin)
    assert [token(app, reg, "wrong") for _ in range(3)] == [401] * 3
    assert token(app, reg) == 429
    time.sleep(1.1)
    assert token(app, reg) == 200
    # "In a row": each success starts the count again.
    for _ in range(3):
        assert [token(app, reg, "wrong") for _ in range(2)] == [401, 401]
        assert token(app, reg) == 200


def test_an_unknown_client_id_locks_out_like_a_real_one(
    make_at: Make, admin: dict[str, str]
) -> None:
    """Else the lockout would tell which client ids exist."""
    app = make_at(auth_failures=3, auth_lockout=60)
    real = register(app, admin)
    fake = {"client_id": "jcl_" + uuid.uuid4().hex, "client_secret": "x"}
    for reg in (real, fake):
        assert [token(app, reg, "wrong") for _ in range(5)] == [401] * 3 + [429] * 2
    post = {**FORM, "client_id": real["client_id"], "client_secret": "wrong"}
    assert app.post("/oauth/token", data=post).status_code == 429  # the id, whatever the method


def test_one_address_is_locked_out_across_client_ids(make_at: Make, admin: dict[str, str]) -> None:
    """Guessing (client id, secret) pairs from one address: after N failures, whatever
    the ids, every client authentication from there gets 429; elsewhere all works."""
    attacker = make_at("198.51.100.7", auth_failures=3, auth_failures_per_address=10)
    neighbour = make_at("203.0.113.9", auth_failures=3, auth_failures_per_address=10)
    real = register(attacker, admin)
    guesses = [{"client_id": f"jcl_guess{i}", "client_secret": "x"} for i in range(30)]
    assert [token(attacker, g) for g in guesses] == [401] * 10 + [429] * 20
    assert token(attacker, real) == 429
    assert token(neighbour, real) == 200  # counted per address, in the shared store
    introspected = attacker.post(
        "/oauth/introspect", data={"token": "x"}, headers=basic(real["client_id"], "s")
    )
    assert_oauth_429(introspected, 60)


def test_wrong_admin_keys_are_locked_out(make_at: Make, admin: dict[str, str]) -> None:
    attacker = make_at("198.51.100.7", auth_failures_per_address=10)
    other = make_at("203.0.113.9", auth_failures_per_address=10)
    wrong = {"Authorization": "Bearer jwa_" + "x" * 43}
    statuses = [attacker.get("/v1/realms", headers=wrong).status_code for _ in range(200)]
    assert statuses == [401] * 10 + [429] * 190
    locked = attacker.get("/v1/realms", headers=admin)  # the right key too, from there
    assert locked.status_code == 429
    assert locked.headers["content-type"] == "application/problem+json"
    assert 1 <= int(locked.headers["retry-after"]) <= 60
    problem = locked.json()
    assert problem["status"] == 429 and problem["type"].endswith(":too-many-requests")
    # An admin key at an OAuth endpoint answers in §5.2 JSON.
    assert_oauth_429(attacker.post("/oauth/register", json={}, headers=admin), 60)
    assert other.get("/v1/realms", headers=admin).status_code == 200


def test_secret_failures_on_a_key_clients_id_do_not_lock_its_assertions_out(
    make_at: Make, admin: dict[str, str], key: rsa.RSAPrivateKey
) -> None:
    """A signature cannot be guessed: a private_key_jwt client is not locked out by
    anyone sending wrong secrets in its name."""
    app = make_at(auth_failures=3)
    keyed = register_key_client(app, admin, key)["client_id"]
    post = {**FORM, "client_id": keyed, "client_secret": "wrong"}
    statuses = [app.post("/oauth/token", data=post).status_code for _ in range(5)]
    assert statuses == [401] * 3 + [429] * 2  # the id is locked for secrets
    assert app.post("/oauth/token", data=assertion_form(assertion(key, keyed))).status_code == 200


def test_a_locked_out_address_gets_no_token_by_assertion(
    make_at: Make, admin: dict[str, str], key: rsa.RSAPrivateKey
) -> None:
    app = make_at(auth_failures_per_address=3)
    keyed = register_key_client(app, admin, key)["client_id"]
    forged = assertion(rsa.generate_private_key(public_exponent=65537, key_size=2048), keyed)
    for _ in range(3):
        assert app.post("/oauth/token", data=assertion_form(forged)).status_code == 401
    assert_oauth_429(app.post("/oauth/token", data=assertion_form(assertion(key, keyed))), 60)


# Request rates --------------------------------------------------------------


def test_token_requests_per_client(make_at: Make, admin: dict[str, str]) -> None:
    app = make_at(rate_token_per_client=3)
    reg, other = register(app, admin), register(app, admin)
    assert [token(app, reg) for _ in range(5)] == [200] * 3 + [429] * 2
    limited = app.post("/oauth/token", data=FORM, headers=basic(reg["client_id"], "s"))
    assert_oauth_429(limited, 60)
    assert "too many requests" in limited.json()["error_description"]
    assert token(app, other) == 200


def test_token_requests_per_address(make_at: Make, admin: dict[str, str]) -> None:
    busy = make_at("198.51.100.7", rate_token_per_address=4)
    calm = make_at("203.0.113.9", rate_token_per_address=4)
    clients = [register(busy, admin) for _ in range(3)]
    assert [token(busy, c) for c in clients * 2] == [200] * 4 + [429] * 2
    assert token(calm, clients[0]) == 200


def test_introspection_requests_per_client(make_at: Make, admin: dict[str, str]) -> None:
    app = make_at(rate_introspect_per_client=2)
    reg = register(app, admin)
    issued = app.post(
        "/oauth/token", data=FORM, headers=basic(reg["client_id"], reg["client_secret"])
    )
    body = {"token": issued.json()["access_token"]}
    headers = basic(reg["client_id"], reg["client_secret"])
    answers = [app.post("/oauth/introspect", data=body, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert_oauth_429(answers[2], 60)
    assert token(app, reg) == 200  # the token endpoint counts on its own


def test_admin_requests_per_key(make_at: Make, admin: dict[str, str]) -> None:
    app = make_at(rate_admin_per_key=3)
    assert [app.get("/v1/realms", headers=admin).status_code for _ in range(4)] == [200] * 3 + [429]
    limited = app.get("/v1/realms", headers=admin)
    assert limited.headers["content-type"] == "application/problem+json"
    assert 1 <= int(limited.headers["retry-after"]) <= 60


def test_assertions_are_counted_per_client(
    make_at: Make, admin: dict[str, str], key: rsa.RSAPrivateKey
) -> None:
    app = make_at(rate_token_per_client=2)
    keyed = register_key_client(app, admin, key)["client_id"]
    statuses = [
        app.post("/oauth/token", data=assertion_form(assertion(key, keyed))).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_a_limit_of_zero_turns_it_off(
    make_at: Make, admin: dict[str, str], redis_client: redis.Redis
) -> None:
    app = make_at()  # every limit 0
    reg = register(app, admin)
    assert {token(app, reg, "wrong") for _ in range(200)} == {401}
    assert {token(app, reg) for _ in range(50)} == {200}
    assert redis_client.keys("*quota*") == []


def test_the_defaults_let_a_busy_client_through(
    make_client: Make, admin: dict[str, str], redis_client: redis.Redis
) -> None:
    """Every limit is on by default, and generous: ``make bench`` runs on them."""
    assert Settings().rate_token_per_client >= 600_000  # 10,000/s for a minute
    app = make_client()
    reg = register(app, admin)
    assert {token(app, reg) for _ in range(50)} == {200}
    time.sleep(4 * FLUSH_INTERVAL)  # counted behind the requests, in batches
    assert redis_client.get(f"jwks:{{default}}:quota:token:{reg['client_id']}") == "50"
    assert redis_client.get("jwks:{addr:testclient}:quota:token") == "50"


# Round trips and outages ------------------------------------------------------


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every write to a store connection (one a round trip), as bytes."""
    writes: list[bytes] = []
    original = AbstractConnection.send_packed_command

    async def recording(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        items = [command] if isinstance(command, (bytes, str)) else list(command)
        chunks = [c.encode() if isinstance(c, str) else bytes(c) for c in items]
        writes.append(b"".join(chunks))
        await original(self, chunks, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", recording)
    return writes


def scripts(write: bytes) -> int:
    """How many script calls one write holds."""
    return write.count(b"\r\nEVAL\r\n") + write.count(b"\r\nEVALSHA\r\n")


def test_an_assertion_is_counted_with_its_jti_in_one_round_trip(
    make_at: Make, admin: dict[str, str], key: rsa.RSAPrivateKey, sent: list[bytes]
) -> None:
    app = make_at(
        rate_token_per_client=100, rate_token_per_address=100, auth_failures_per_address=5
    )
    keyed = register_key_client(app, admin, key)["client_id"]
    app.post("/oauth/token", data=assertion_form(assertion(key, keyed))).raise_for_status()
    sent.clear()
    app.post("/oauth/token", data=assertion_form(assertion(key, keyed))).raise_for_status()
    # One script call: the client's counter, the address's, and the jti's SET NX
    # (on a Cluster, one call per slot, in one pipeline: see tests/storage/test_quotas.py).
    assert len(sent) == 1 and scripts(sent[0]) == 1, sent
    assert b" once " in sent[0] and b"jwks:{default}:jti:" in sent[0]


def test_client_secret_requests_wait_for_no_round_trip_and_are_counted_in_batches(
    make_at: Make, admin: dict[str, str], sent: list[bytes]
) -> None:
    app = make_at(
        rate_token_per_client=100,
        rate_token_per_address=100,
        auth_failures=5,
        auth_failures_per_address=5,
    )
    unlimited = make_at("203.0.113.9")
    reg = register(app, admin)
    assert token(app, reg) == token(unlimited, reg) == 200
    time.sleep(4 * FLUSH_INTERVAL)
    sent.clear()
    # A burst: every request answered before its count reaches the store...
    begin = time.monotonic()
    assert {token(app, reg) for _ in range(20)} == {200}
    took = time.monotonic() - begin
    # ...and their counts reach it in one batched call per interval, not 20.
    time.sleep(4 * FLUSH_INTERVAL)
    assert 1 <= len(sent) <= min(19, took / FLUSH_INTERVAL + 2), (len(sent), took)
    assert all(scripts(write) == 1 for write in sent)
    sent.clear()
    assert token(unlimited, reg) == 200  # limits off: no round trip at all (a cached client)
    assert sent == []


def test_limits_fail_open_while_the_store_is_away(
    make_at: Make,
    admin: dict[str, str],
    key: rsa.RSAPrivateKey,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cached client_secret client keeps getting tokens; private_key_jwt, whose jti
    needs the store, gets 503; the outage is logged once, not per request."""
    server = EmbeddedServer(tmp_path / "own", find_server_binary())
    server.start()
    try:
        app = make_at(redis_url=server.url, rate_token_per_client=100, auth_failures=5)
        reg = register(app, admin)
        keyed = register_key_client(app, admin, key)["client_id"]
        assert token(app, reg) == 200
        server.stop()
        with caplog.at_level(logging.WARNING, logger="service.ratelimit"):
            assert [token(app, reg) for _ in range(20)] == [200] * 20
            time.sleep(1.1)  # the limiter asks the store again, and fails open again
            assert token(app, reg) == 200
        pkjwt = app.post("/oauth/token", data=assertion_form(assertion(key, keyed)))
        assert pkjwt.status_code == 503, pkjwt.text
        assert pkjwt.json()["error"] == "temporarily_unavailable"
        warnings = [r for r in caplog.records if "rate limits not counted" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    finally:
        server.stop()


def test_a_lockout_made_on_one_replica_holds_on_another_from_its_next_batch(
    make_at: Make, admin: dict[str, str]
) -> None:
    # The same address on two replicas: one sees the guesses, the other the owner.
    guessed = make_at("198.51.100.7", auth_failures=3, auth_lockout=30)
    other = make_at("198.51.100.8", auth_failures=3, auth_lockout=30)
    reg = register(guessed, admin)
    assert token(other, reg) == 200  # the other replica knows the client's counter
    assert [token(guessed, reg, "wrong") for _ in range(4)] == [401, 401, 401, 429]
    time.sleep(2 * FLUSH_INTERVAL)
    assert token(other, reg) in (200, 429)  # this one refreshes its view, at the latest
    time.sleep(4 * FLUSH_INTERVAL)
    assert token(other, reg) == 429
