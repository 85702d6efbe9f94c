"""Fixtures: one real Valkey server per test session (the embedded binary), flushed
between tests; settings, stores, apps and clients on top of it.

``JWKS_TEST_REDIS_URL`` points the suite at another server instead (it is
flushed between tests, so it must be one the suite owns).

``topology_url`` / ``topology_store`` / ``topology_client`` run a test on each
topology in turn: the single server above, a 3-master Cluster and a Sentinel
set (master, replica, 3 sentinels), the last two started once per session on
first use.
"""

from __future__ import annotations

import base64
import io
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from service import logs
from service.app import create_app
from service.config import Settings
from service.storage.embedded import EmbeddedServer, find_server_binary
from service.storage.redis import RedisStore, connect
from tests._servers import HOST, Cluster, SentinelSet, running

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


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A store of the test's own, to stop, stall or restart."""
    server = EmbeddedServer(tmp_path / "own", find_server_binary())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def service_log() -> Iterator[io.StringIO]:
    """The service's own log lines (JSON, from DEBUG up), as the CLI configures them."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure("json", "DEBUG", stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])



# Topologies -----------------------------------------------------------------

TOPOLOGIES = ("single", "cluster", "sentinel")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three Cluster masters on free ports, for the whole session."""
    with running(Cluster(find_server_binary(), tmp_path_factory.mktemp("cluster"))) as c:
        assert isinstance(c, Cluster)
        print(f"\ncluster ready in {c.setup_seconds:.2f} s")
        yield c


@pytest.fixture(scope="session")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    """A master, a replica and three sentinels, for the whole session (no failover)."""
    with running(SentinelSet(find_server_binary(), tmp_path_factory.mktemp("sentinel"))) as s:
        assert isinstance(s, SentinelSet)
        print(f"\nsentinel set ready in {s.setup_seconds:.2f} s")
        yield s


@pytest.fixture(params=TOPOLOGIES)
def topology_url(request: pytest.FixtureRequest) -> str:
    """The URL of each topology in turn, flushed before the test."""
    if request.param == "single":
        url: str = request.getfixturevalue("redis_url")
        with redis.Redis.from_url(url) as c:
            c.flushall()
        return url
    topology: Cluster | SentinelSet = request.getfixturevalue(
        "cluster" if request.param == "cluster" else "sentinels"
    )
    topology.flush()
    return topology.url


@pytest.fixture
def topology_client(
    request: pytest.FixtureRequest, topology_url: str
) -> Iterator[redis.Redis | redis.RedisCluster]:
    """A sync client on the topology's data, to look at what the store wrote."""
    client: redis.Redis | redis.RedisCluster
    if topology_url.startswith("redis+cluster:"):
        cluster: Cluster = request.getfixturevalue("cluster")
        client = redis.RedisCluster(HOST, cluster.nodes[0].port, decode_responses=True)
    elif topology_url.startswith("redis+sentinel:"):
        sentinels: SentinelSet = request.getfixturevalue("sentinels")
        client = sentinels.current_master().client()
    else:
        client = redis.Redis.from_url(topology_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def topology_store(topology_url: str) -> AsyncIterator[RedisStore]:
    """A store on each topology in turn (flushed), bound to the test's event loop."""
    s = connect(topology_url)
    try:
        yield s
    finally:
        await s.close()
