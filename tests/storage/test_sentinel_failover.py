"""A Sentinel failover under load: the master is SIGKILLed while keys are being created.

The test has its own Sentinel set (the failover changes which server is master).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import crypto
from service.keys import GenerateKey, KeyManager
from service.storage import StoreUnavailable
from service.storage.embedded import find_server_binary
from service.storage.redis import connect
from tests._servers import SentinelSet, running
from tests.conftest import KEK, FakeClock

#: The failover should take a few seconds (down-after 500 ms, then an election).
MAX_GAP = 15.0


@pytest.fixture
def own_sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    with running(SentinelSet(find_server_binary(), tmp_path / "sentinel")) as s:
        assert isinstance(s, SentinelSet)
        yield s


async def test_store_survives_master_kill(own_sentinels: SentinelSet) -> None:
    sentinels = own_sentinels
    old_master = sentinels.master
    store = connect(sentinels.url)
    manager = KeyManager(store, crypto.Sealer(base64.b64decode(KEK)), FakeClock(), grace=3600)
    try:
        await manager.ensure_default_realm()
        killed_at: float | None = None
        recovered_at: float | None = None
        failures: list[BaseException] = []
        successes_after = 0
        deadline = time.monotonic() + MAX_GAP + 10

        async def kill_soon() -> None:
            nonlocal killed_at
            await asyncio.sleep(0.3)
            old_master.kill()
            killed_at = time.monotonic()

        killer = asyncio.create_task(kill_soon())
        # Write in a loop through the kill until a few writes succeed on the new master.
        while successes_after < 3:
            assert time.monotonic() < deadline, "the store never came back"
            try:
                await manager.create_key("default", GenerateKey("es256"))
            except StoreUnavailable as exc:  # anything else fails the test
                failures.append(exc)
                await asyncio.sleep(0.05)
                continue
            if killed_at is not None:
                if recovered_at is None:
                    recovered_at = time.monotonic()
                successes_after += 1
        await killer
        assert killed_at is not None and recovered_at is not None
        gap = recovered_at - killed_at
        print(
            f"\nsentinel failover: first successful write {gap:.2f} s after SIGKILL "
            f"({len(failures)} StoreUnavailable meanwhile)"
        )
        assert failures, "the kill went unnoticed"
        assert gap < MAX_GAP
        assert sentinels.current_master() is sentinels.replica  # the replica took over
        ring = await store.load_ring("default")
        assert ring is not None
        active = Counter(k.algo for k in ring.keys if k.status == "active")
        assert set(active.values()) == {1}, active
        assert active["es256"] == 1
        # The change feed resubscribes on the new master too.
        feed = store.changes()
        assert await asyncio.wait_for(anext(feed), 5) == "*"
        await manager.create_key("default", GenerateKey("es256"))
        assert await asyncio.wait_for(anext(feed), 5) == "default"
        await feed.aclose()  # type: ignore[attr-defined]
    finally:
        await store.close()
