"""Readiness means "this process can serve": a store outage or stall is reported but
does not make a replica unready until its caches are older than the JWKS max-age;
an unhealthy background loop does; and the probe answers within a second."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

from starlette.testclient import TestClient

from service.http._state import Services
from service.storage.embedded import EmbeddedServer
from tests.conftest import FakeClock

#: What a probe may take, at most (kubelet's default timeout is one second).
PROBE_BUDGET = 1.0


def probe(client: TestClient) -> Any:
    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started
    assert elapsed < PROBE_BUDGET, f"readyz took {elapsed:.2f} s"
    return response


def test_ready_with_the_store_up(client: TestClient) -> None:
    ready = probe(client)
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and body["store"] == "up" and body["reasons"] == []
    assert body["cache_age_s"] >= 0


def test_a_stopped_store_leaves_the_replica_ready(
    make_client: Callable[..., TestClient], own_server: EmbeddedServer
) -> None:
    client = make_client(redis_url=own_server.url)
    own_server.stop()
    ready = probe(client)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    assert ready.json()["store"] in ("down", "slow")  # refused, or still retrying
    assert client.get("/.well-known/jwks.json").status_code == 200  # from memory


def test_a_stalled_store_does_not_stall_the_probe(
    make_client: Callable[..., TestClient], own_server: EmbeddedServer
) -> None:
    client = make_client(redis_url=own_server.url)
    pid = own_server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        for _ in range(3):
            ready = probe(client)
            assert ready.status_code == 200, ready.text
            assert ready.json()["store"] == "slow"
    finally:
        os.kill(pid, signal.SIGCONT)


def test_unready_once_the_store_is_away_longer_than_the_jwks_max_age(
    make_client: Callable[..., TestClient], own_server: EmbeddedServer
) -> None:
    clock = FakeClock()
    client = make_client(redis_url=own_server.url, clock=clock)
    own_server.stop()
    max_age = services(client).settings.jwks_max_age
    clock.advance(max_age - 20)  # the last check was at most one interval ago
    assert probe(client).status_code == 200
    clock.advance(30)
    unready = probe(client)
    assert unready.status_code == 503
    body = unready.json()
    assert body["status"] == "unready" and body["cache_age_s"] > max_age
    (reason,) = body["reasons"]
    assert "JWKS_JWKS_MAX_AGE" in reason and body["store"] in reason


def test_an_unhealthy_loop_makes_the_replica_unready_with_its_reason(
    client: TestClient,
) -> None:
    subscription = services(client).loops[0]
    # The subscription records a success once it is subscribed: wait for that, or
    # it lands after the injected failures and wipes them (a flaky 200, seen in CI).
    deadline = time.monotonic() + 5
    while subscription.last_success is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert subscription.last_success is not None, "the subscription never subscribed"
    for _ in range(5):
        subscription.failed(RuntimeError("NOPERM injected"))
    unready = probe(client)
    assert unready.status_code == 503
    assert unready.json()["reasons"] == [
        "cache-watch subscription: 5 failures in a row, last RuntimeError: NOPERM injected"
    ]
    assert unready.json()["store"] == "up"
    subscription.succeeded()
    assert probe(client).status_code == 200


def test_the_store_coming_back_makes_an_unready_replica_ready(
    make_client: Callable[..., TestClient], own_server: EmbeddedServer
) -> None:
    clock = FakeClock()
    client = make_client(redis_url=own_server.url, clock=clock)
    pid = own_server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        clock.advance(services(client).settings.jwks_max_age + 1)
        assert probe(client).status_code == 503
    finally:
        os.kill(pid, signal.SIGCONT)
    ready = probe(client)
    assert ready.status_code == 200 and ready.json()["store"] == "up"


def services(client: TestClient) -> Services:
    """The lifespan's services of ``client``'s app."""
    found: Services = client.app_state["services"]
    return found


def test_an_evicted_default_ring_is_loaded_again_not_a_reason_to_be_unready(
    client: TestClient,
) -> None:
    cache = services(client).keys.cache
    cache._drop("default")  # what eviction (JWKS_CACHE_REALMS) does
    assert not cache.holds("default")
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert cache.holds("default")
