"""The store's metrics: a lost change subscription is a reconnect when it is back, and
on Sentinel a master that moved meanwhile is a failover.

The failover test has a Sentinel set of its own (the failover changes the master).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from service.storage import RESUBSCRIBED, Change
from service.storage.embedded import EmbeddedServer, find_server_binary
from service.storage.redis import RedisStore, connect
from tests._servers import SentinelSet, running

#: The failover should take a few seconds (down-after 500 ms, then an election).
FAILOVER_TIMEOUT = 20.0


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def next_resubscribe(feed: AsyncIterator[Change], within: float) -> None:
    """Read the feed until it says it has subscribed (again)."""
    async with asyncio.timeout(within):
        while await anext(feed) != RESUBSCRIBED:
            pass


async def test_a_restarted_server_is_a_reconnect_not_a_failover(
    own_server: EmbeddedServer,
) -> None:
    store = connect(own_server.url)
    feed = store.changes()
    try:
        await next_resubscribe(feed, 5)
        reconnects = sample("jwks_store_reconnects_total", topology="single")
        errors = sample("jwks_store_errors_total", kind="connection")
        own_server.stop()
        own_server.start()
        await next_resubscribe(feed, 10)
        assert sample("jwks_store_reconnects_total", topology="single") == reconnects + 1
        assert sample("jwks_store_errors_total", kind="connection") > errors
        assert sample("jwks_store_failovers_total", topology="single") == 0
    finally:
        await feed.aclose()  # type: ignore[attr-defined]
        await store.close()


@pytest.fixture
def own_sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    with running(SentinelSet(find_server_binary(), tmp_path / "sentinel")) as s:
        assert isinstance(s, SentinelSet)
        yield s


async def test_a_sentinel_failover_is_counted(own_sentinels: SentinelSet) -> None:
    store: RedisStore = connect(own_sentinels.url)
    feed = store.changes()
    try:
        await next_resubscribe(feed, 5)
        failovers = sample("jwks_store_failovers_total", topology="sentinel")
        reconnects = sample("jwks_store_reconnects_total", topology="sentinel")
        own_sentinels.master.kill()
        await next_resubscribe(feed, FAILOVER_TIMEOUT)
        assert own_sentinels.current_master() is own_sentinels.replica
        assert sample("jwks_store_failovers_total", topology="sentinel") == failovers + 1
        assert sample("jwks_store_reconnects_total", topology="sentinel") == reconnects + 1
    finally:
        await feed.aclose()  # type: ignore[attr-defined]
        await store.close()
