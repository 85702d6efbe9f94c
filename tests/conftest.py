"""Fixtures: one real Valkey server per test session (the embedded binary), flushed
between tests; settings, stores, apps and clients on top of it.

``JWKS_TEST_REDIS_URL`` points the suite at another server instead (it is
flushed between tests, so it must be one the suite owns).
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.storage.embedded import EmbeddedServer, find_server_binary
from service.storage.redis import RedisStore, connect

ADMIN_KEY = "test-bootstrap-admin-key-0123456789abcdef"
KEK = base64.b64encode(bytes(range(32))).decode()


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server for the whole session: the embedded Valkey binary."""
    url = os.environ.get("JWKS_TEST_REDIS_URL")
    if url:
        if any(h in url for h in ("127.0.0.1:6379", "localhost:6379")) or url.rstrip("/").endswith(
            ("127.0.0.1", "localhost")
        ):
            pytest.exit(
                "JWKS_TEST_REDIS_URL must not be the default server on :6379: tests flush it"
            )
        yield url
        return
    server = EmbeddedServer(tmp_path_factory.mktemp("valkey"), find_server_binary())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A sync client on the test server; the data is flushed before each test."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushall()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def store(redis_client: redis.Redis, redis_url: str) -> AsyncIterator[RedisStore]:
    """A store on the (flushed) test server, bound to the test's event loop."""
    s = connect(redis_url)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def settings(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> Settings:
    """Settings on the test server, with a fixed KEK and a bootstrap admin key."""
    return Settings(
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        issuer="http://testserver",
        bootstrap_admin_key=ADMIN_KEY,
        kek=base64.b64decode(KEK),
        jwks_max_age=300,
        key_grace=3600,
        rsa_bits=2048,
        # Scheduled rotation would add next keys mid-test; its own tests turn it on.
        rotation_interval=0,
    )


@pytest.fixture
def make_client(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """Build running TestClients (lifespan entered); several may share the store."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        clock = overrides.pop("clock", None)
        s = Settings(**{**settings.__dict__, **overrides})
        client = TestClient(create_app(s, clock=clock))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in reversed(clients):
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """A running app on the test server."""
    return make_client()


@pytest.fixture
def admin() -> dict[str, str]:
    """Headers with the bootstrap (global) admin key."""
    return {"Authorization": f"Bearer {ADMIN_KEY}"}
