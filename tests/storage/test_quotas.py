"""Quota counters in the store, on every topology: windows, lockouts, slots, the jti.

Windows are real Redis TTLs, so the tests that watch one end use windows of a
fraction of a second.
"""

from __future__ import annotations

import asyncio

import pytest
import redis

from service.errors import RateLimited
from service.storage import Quota, QuotaExceeded
from service.storage.redis import RedisStore


@pytest.fixture
def store(topology_store: RedisStore) -> RedisStore:
    return topology_store


@pytest.fixture
def redis_client(topology_client: redis.Redis) -> redis.Redis:
    return topology_client


def hit(
    subject: str = "c1", realm: str | None = "acme", limit: int = 3, window: float = 60
) -> Quota:
    return Quota("token", subject, realm, "hit", limit, window)


async def test_hits_count_up_to_the_limit_then_refuse_until_the_window_ends(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    assert [await store.count([hit()]) for _ in range(3)] == [[1], [2], [3]]
    with pytest.raises(QuotaExceeded) as refused:
        await store.count([hit()])
    assert refused.value.quota == hit()
    assert refused.value.retry_after == 60  # whole seconds, rounded up
    assert isinstance(refused.value, RateLimited)  # answered 429 wherever it surfaces
    # The window started at the first hit: later hits do not extend it.
    ttl = redis_client.pttl("jwks:{acme}:quota:token:c1")
    assert 58_000 < ttl <= 60_000


async def test_the_window_is_a_real_ttl(store: RedisStore) -> None:
    short = hit(limit=1, window=0.3)
    assert await store.count([short]) == [1]
    with pytest.raises(QuotaExceeded) as refused:
        await store.count([short])
    assert refused.value.retry_after == 1  # never 0: "retry now" would be wrong
    await asyncio.sleep(0.4)
    assert await store.count([short]) == [1]  # a new window


async def test_counters_of_one_request_in_many_slots_are_counted_together(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    """A client's counter lies in its realm's slot, an address's and an admin key's in
    their own; one call counts them all (on a Cluster, one script per slot)."""
    quotas = [
        hit("c1", "acme"),
        hit("addr:192.0.2.1", None),
        Quota("failures", "c1", "acme", "check", 5, 60),
        Quota("failures", "addr:192.0.2.1", None, "check", 5, 60),
        hit("admin:ab12", None),
    ]
    assert await store.count(quotas) == [1, 1, 0, 0, 1]
    assert await store.count(quotas) == [2, 2, 0, 0, 2]
    assert redis_client.get("jwks:{acme}:quota:token:c1") == "2"
    assert redis_client.get("jwks:{addr:192.0.2.1}:quota:token") == "2"
    assert redis_client.get("jwks:{admin:ab12}:quota:token") == "2"
    # A check only reads: no counter was created for it.
    assert redis_client.exists("jwks:{acme}:quota:failures:c1") == 0


async def test_the_first_exceeded_quota_is_reported_after_every_op_was_applied(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    tight, loose = hit("c1", limit=1), hit("addr:192.0.2.1", None, limit=100)
    await store.count([tight, loose])
    with pytest.raises(QuotaExceeded) as refused:
        await store.count([loose, tight])
    assert refused.value.quota == tight
    assert redis_client.get("jwks:{addr:192.0.2.1}:quota:token") == "2"


async def test_failures_lock_out_for_a_whole_window_from_the_last(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    """The limit-th failure restarts the window: the lockout lasts all of it; a check
    is exceeded from then on, and a reset ends it."""
    fail = Quota("failures", "c1", "acme", "fail", 3, 60)
    check = Quota("failures", "c1", "acme", "check", 3, 60)
    key = "jwks:{acme}:quota:failures:c1"
    assert await store.count([fail]) == [1]
    redis_client.pexpire(key, 5_000)  # as if most of the window had gone by
    assert await store.count([fail]) == [2]
    assert redis_client.pttl(key) <= 5_000  # a failure below the limit does not extend it
    assert await store.count([check]) == [2]
    assert await store.count([fail]) == [3]  # the limit: the lockout starts now
    assert redis_client.pttl(key) > 58_000
    with pytest.raises(QuotaExceeded) as locked:
        await store.count([check])
    assert locked.value.retry_after == 60
    assert await store.count([Quota("failures", "c1", "acme", "reset")]) == [0]
    assert await store.count([check]) == [0]
    assert redis_client.exists(key) == 0


async def test_a_limit_of_zero_is_never_exceeded(store: RedisStore) -> None:
    for _ in range(5):
        await store.count([hit(limit=0), Quota("failures", "c1", "acme", "check", 0, 60)])


async def test_the_jti_and_the_quotas_go_together(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    quotas = [hit("c1", limit=2), hit("addr:192.0.2.1", None, limit=2)]
    assert await store.consume_jti("acme", "c1", "j1", 30, quotas) is True
    assert await store.consume_jti("acme", "c1", "j1", 30, quotas) is False  # a replay
    assert redis_client.get("jwks:{acme}:quota:token:c1") == "2"
    with pytest.raises(QuotaExceeded):
        await store.consume_jti("acme", "c1", "j2", 30, quotas)
    # Used all the same: a client signs a new assertion for every request.
    assert await store.consume_jti("acme", "c1", "j2", 30) is False
    assert await store.consume_jti("acme", "c1", "j3", 30) is True  # no quotas: as before
