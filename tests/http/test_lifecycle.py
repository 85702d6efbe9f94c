"""The drain: the first stop signal turns readiness 503 and closes connections after
each response, everything is still served, and uvicorn stops once the delay is over.

These drive :class:`DrainingServer`'s two overrides as uvicorn does (its signal
handler, its 0.1 s tick); ``tests/test_graceful_shutdown.py`` runs the real thing.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from service.http.lifecycle import DRAIN, Drain, DrainingServer, ServeConfig

CLOSE = (b"connection", b"close")


def server(delay: float, drain: Drain) -> DrainingServer:
    """A server as uvicorn's main loop sees it once started (the app is never loaded)."""
    made = DrainingServer(
        ServeConfig("service.app:create_app_from_env", shutdown_delay=delay), drain
    )
    made.started = True
    return made


async def tick(made: DrainingServer) -> bool:
    # Not a multiple of 10: uvicorn's own tick would rebuild the date header, which
    # needs a loaded config.
    return await made.on_tick(1)


async def test_the_first_sigterm_drains_then_stops() -> None:
    drain = Drain()
    made = server(0.3, drain)
    made.handle_exit(signal.SIGTERM, None)
    assert drain.active and not made.should_exit
    assert await tick(made) is False
    assert CLOSE in made.server_state.default_headers
    await asyncio.sleep(0.35)
    assert await tick(made) is True
    assert made.should_exit and not made.force_exit


async def test_a_repeated_sigterm_does_not_cut_the_drain_short() -> None:
    """A signal to the process group reaches a worker directly and from the supervisor."""
    made = server(30, Drain())
    made.handle_exit(signal.SIGTERM, None)
    made.handle_exit(signal.SIGTERM, None)
    assert await tick(made) is False
    assert not made.should_exit


async def test_ctrl_c_during_the_drain_ends_it_and_a_third_forces_the_exit() -> None:
    made = server(30, Drain())
    made.handle_exit(signal.SIGINT, None)
    made.handle_exit(signal.SIGINT, None)
    assert await tick(made) is True
    assert made.should_exit and not made.force_exit
    made.handle_exit(signal.SIGINT, None)
    assert made.force_exit


@pytest.mark.parametrize(
    ("started", "delay"), [(False, 30), (True, 0)], ids=["starting", "no delay"]
)
def test_no_drain_while_starting_or_with_no_delay(started: bool, delay: float) -> None:
    drain = Drain()
    made = server(delay, drain)
    made.started = started
    made.handle_exit(signal.SIGTERM, None)
    assert made.should_exit and not drain.active


@pytest.fixture
def draining() -> Iterator[None]:
    """This process's drain, begun for the test and undone after it."""
    DRAIN.begin()
    try:
        yield
    finally:
        DRAIN.since = None


@pytest.mark.usefixtures("draining")
def test_a_draining_replica_is_unready_and_still_serves(client: TestClient) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["reasons"][0] == "shutting down"
    assert ready.json()["store"] == "up"
    assert client.get("/healthz").status_code == 200  # alive: no restart
    assert client.get("/.well-known/jwks.json").status_code == 200


def test_a_replica_that_is_not_draining_is_ready(client: TestClient) -> None:
    assert not DRAIN.active
    assert client.get("/readyz").status_code == 200
