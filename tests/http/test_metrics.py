"""``GET /metrics``: each family moves after the action that should move it, and the
bearer token keeps the scrape to whoever holds it.

Counters are per process and the tests share one, so each test compares the
values before and after its own actions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from service.storage.embedded import EmbeddedServer
from tests.conftest import FakeClock
from tests.oauth.test_least_privilege import jitsi as jitsi_client
from tests.oauth.test_token import FORM, assertion, assertion_form, register, register_key_client

METRICS_TOKEN = "metrics-token-0123456789abcdef"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient, **kwargs: Any) -> Samples:
    """Every sample of one scrape, by name and labels."""
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 if the scrape has none (a counter not yet moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def eventually(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def pair(registered: dict[str, str]) -> tuple[str, str]:
    return registered["client_id"], registered["client_secret"]


def posted(registered: dict[str, str]) -> dict[str, str]:
    """client_secret_post credentials."""
    return {"client_id": registered["client_id"], "client_secret": registered["client_secret"]}


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_the_scrape_is_the_prometheus_text_format(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert "# HELP jwks_tokens_issued_total " in response.text
    assert "# TYPE jwks_http_request_duration_seconds histogram" in response.text


def test_tokens_are_counted_by_realm_auth_method_and_profile(
    make_client: Callable[..., TestClient], admin: dict[str, str], key: rsa.RSAPrivateKey
) -> None:
    # Every realm its own label value: the suite may have named 100 realms already.
    client = make_client(metrics_realms=0)
    basic = register(client, admin)
    post = register(client, admin, token_endpoint_auth_method="client_secret_post")
    jitsi = jitsi_client(client, admin)
    keyed = register_key_client(client, admin, key)["client_id"]
    assert client.post("/v1/realms", json={"name": "acme"}, headers=admin).status_code == 201
    acme = client.post("/realms/acme/oauth/register", json={}, headers=admin).json()
    before = scrape(client)
    requests: list[tuple[str, dict[str, str], tuple[str, str] | None]] = [
        ("/oauth/token", FORM, pair(basic)),
        ("/oauth/token", {**FORM, **posted(post)}, None),
        ("/oauth/token", assertion_form(assertion(key, keyed)), None),
        ("/oauth/token", {**FORM, **posted(jitsi), "room": "r"}, None),
        ("/realms/acme/oauth/token", FORM, pair(acme)),
    ]
    for url, form, auth in requests:
        assert client.post(url, data=form, auth=auth).status_code == 200
    after = scrape(client)
    name = "jwks_tokens_issued_total"
    for realm, method, profile in [
        ("default", "client_secret_basic", "rfc9068"),
        ("default", "client_secret_post", "rfc9068"),
        ("default", "private_key_jwt", "rfc9068"),
        ("default", "client_secret_post", "jitsi"),
        ("acme", "client_secret_basic", "rfc9068"),
    ]:
        labels = {"realm": realm, "auth_method": method, "profile": profile}
        assert moved(before, after, name, **labels) == 1, labels


def test_failed_client_authentications_are_counted_by_reason(
    client: TestClient, admin: dict[str, str], key: rsa.RSAPrivateKey
) -> None:
    basic = register(client, admin)
    keyed = register_key_client(client, admin, key)["client_id"]
    replayed = assertion_form(assertion(key, keyed))
    assert client.post("/oauth/token", data=replayed).status_code == 200
    before = scrape(client)
    failures = {
        "wrong_secret": {"data": FORM, "auth": (basic["client_id"], "wrong")},
        "unknown_client": {"data": FORM, "auth": ("jcl_nobody", "secret")},
        "no_credentials": {"data": FORM},
        "malformed_credentials": {"data": FORM, "headers": {"Authorization": "Basic !!"}},
        "replayed_jti": {"data": replayed},
        "wrong_method": {"data": assertion_form(assertion(key, basic["client_id"]))},
    }
    for kwargs in failures.values():
        assert client.post("/oauth/token", **kwargs).status_code == 401
    # Introspection authenticates its clients the same way.
    assert client.post("/oauth/introspect", data={"token": "x"}).status_code == 401
    after = scrape(client)
    name = "jwks_client_auth_failures_total"
    for reason in failures:
        expected = 2 if reason == "no_credentials" else 1
        assert moved(before, after, name, reason=reason) == expected, reason


def test_introspections_are_counted_by_result(client: TestClient, admin: dict[str, str]) -> None:
    doomed = register(client, admin)
    auth = (doomed["client_id"], doomed["client_secret"])
    token = client.post("/oauth/token", data=FORM, auth=auth).json()["access_token"]
    before = scrape(client)
    for sent in (token, "not-a-token"):
        assert client.post("/oauth/introspect", data={"token": sent}, headers=admin).is_success
    url = f"/v1/realms/default/clients/{doomed['client_id']}"
    assert client.delete(url, headers=admin).status_code == 204
    gone = client.post("/oauth/introspect", data={"token": token}, headers=admin)
    assert gone.json() == {"active": False}
    after = scrape(client)
    name = "jwks_introspections_total"
    assert moved(before, after, name, result="active", reason="valid") == 1
    assert moved(before, after, name, result="inactive", reason="invalid") == 1
    assert moved(before, after, name, result="inactive", reason="client_deleted") == 1


def test_rotations_are_counted_and_keys_reported(
    make_client: Callable[..., TestClient], admin: dict[str, str]
) -> None:
    clock = FakeClock()
    client = make_client(clock=clock, metrics_realms=0)
    rotate = "/v1/realms/default/jwt_keys/rotate"
    labels = {"realm": "default", "algo": "rs256"}
    before = scrape(client)
    assert value(before, "jwks_next_key_ready", **labels) == 0  # no next key yet
    clock.advance(100)
    assert value(scrape(client), "jwks_signing_key_age_seconds", **labels) == pytest.approx(100)
    # The first rotation publishes a next key, which may sign once every cached JWKS has it.
    assert client.post(rotate, json={"algo": "rs256"}, headers=admin).status_code == 409
    assert value(scrape(client), "jwks_next_key_ready", **labels) == 0
    clock.advance(300 + 5)
    assert value(scrape(client), "jwks_next_key_ready", **labels) == 1
    assert client.post(rotate, json={"algo": "rs256"}, headers=admin).status_code == 200
    immediate = {"algo": "rs256", "immediate": True}
    assert client.post(rotate, json=immediate, headers=admin).status_code == 200
    after = scrape(client)
    name = "jwks_key_rotations_total"
    assert moved(before, after, name, **labels, trigger="manual") == 1
    assert moved(before, after, name, **labels, trigger="immediate") == 1
    assert value(after, "jwks_signing_key_age_seconds", **labels) == 0


def test_cache_invalidations_are_counted_by_cache_and_cause(
    make_client: Callable[..., TestClient], admin: dict[str, str]
) -> None:
    """Two replicas on one store: one changes, the other hears of it."""
    writer, reader = make_client(), make_client()
    client = register(writer, admin)
    auth = (client["client_id"], client["client_secret"])
    assert reader.post("/oauth/token", data=FORM, auth=auth).status_code == 200  # cached
    before = scrape(reader)
    assert writer.post("/v1/realms/default/jwt_keys", json={"algo": "es256"}, headers=admin)
    url = f"/v1/realms/default/clients/{client['client_id']}"
    assert writer.delete(url, headers=admin).status_code == 204
    name = "jwks_cache_invalidations_total"

    def heard() -> bool:
        now = scrape(reader)
        return (
            moved(before, now, name, cache="key_ring", cause="message") >= 1
            and moved(before, now, name, cache="client", cause="message") >= 1
        )

    eventually(heard, "the reader's caches dropped what the writer changed")
    assert moved(before, scrape(reader), name, cache="key_ring", cause="write") >= 1


def test_background_loops_report_their_last_success(client: TestClient) -> None:
    name = "jwks_background_loop_last_success_timestamp_seconds"

    def succeeded() -> bool:
        samples = scrape(client)
        return all(
            value(samples, name, loop=loop) > 0
            for loop in ("cache-watch subscription", "cache revalidation")
        )

    eventually(succeeded, "both cache loops succeeded")
    assert value(scrape(client), "jwks_cache_age_seconds") >= 0
    assert ("jwks_cache_age_seconds", frozenset()) in scrape(client)


def test_store_errors_and_the_reconnect_are_counted(
    make_client: Callable[..., TestClient], own_server: EmbeddedServer
) -> None:
    client = make_client(redis_url=own_server.url)
    before = scrape(client)
    own_server.stop()
    assert client.get("/readyz").json()["store"] in ("down", "slow")  # a PING that failed
    assert client.post("/oauth/token", data=FORM, auth=("jcl_nobody", "x")).status_code == 503
    after = scrape(client)
    errors = sum(
        moved(before, after, "jwks_store_errors_total", kind=kind)
        for kind in ("connection", "timeout", "os")
    )
    assert errors >= 2
    own_server.start()
    eventually(
        lambda: (
            moved(before, scrape(client), "jwks_store_reconnects_total", topology="single") >= 1
        ),
        "the change subscription reconnected",
        timeout=20,
    )
    assert moved(before, scrape(client), "jwks_store_failovers_total", topology="single") == 0


def test_a_metrics_token_is_required_when_set(make_client: Callable[..., TestClient]) -> None:
    client = make_client(metrics_token=METRICS_TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert METRICS_TOKEN not in refused.text
    wrong_length = {"Authorization": f"Bearer {METRICS_TOKEN}x"}
    assert client.get("/metrics", headers=wrong_length).status_code == 401
    served = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert served.status_code == 200
    assert "jwks_tokens_issued_total" in served.text
    assert METRICS_TOKEN not in served.text


def test_without_a_token_the_scrape_is_open(client: TestClient) -> None:
    anyone = client.get("/metrics", headers={"Authorization": "Bearer anything"})
    assert anyone.status_code == 200
