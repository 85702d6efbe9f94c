"""The store against a real server: CAS, TTL pruning, paging, the change feed.

One conformance suite, run on every topology (single server, Cluster, Sentinel):
this module's ``store`` and ``redis_client`` stand for the conftest's
``topology_store`` and ``topology_client``.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import redis

from service.models import AdminKey, Client, KeyRecord, KeyRing, Realm
from service.storage import (
    RESUBSCRIBED,
    Change,
    InvalidCursor,
    RealmExists,
    RealmGone,
    StoreUnavailable,
    VersionedClient,
)
from service.storage.redis import RedisStore, connect

NOW = 1_800_000_000.0


@pytest.fixture
def store(topology_store: RedisStore) -> RedisStore:
    return topology_store


@pytest.fixture
def redis_client(topology_client: redis.Redis) -> redis.Redis:
    return topology_client


def key(n: int, status: str = "active", **kw: object) -> KeyRecord:
    return KeyRecord(
        id=f"jky_{n:022d}",
        kid=f"kid-{n}",
        algo="rs256",
        status=status,  # type: ignore[arg-type]
        created_at=NOW + n,
        **kw,  # type: ignore[arg-type]
    )


async def new_realm(store: RedisStore, name: str = "acme", *keys: KeyRecord) -> KeyRing:
    await store.create_realm(Realm(name, NOW), list(keys) or [key(0)], NOW)
    ring = await store.load_ring(name)
    assert ring is not None
    return ring


async def test_create_and_load(store: RedisStore) -> None:
    ring = await new_realm(store, "acme", key(0), key(1, "verify_only"))
    assert ring.realm == Realm("acme", NOW)
    assert {k.id for k in ring.keys} == {key(0).id, key(1).id}
    assert ring.by_id(key(0).id) == key(0)
    assert await store.load_ring("other") is None


async def test_create_twice_is_refused_and_changes_nothing(store: RedisStore) -> None:
    ring = await new_realm(store)
    with pytest.raises(RealmExists):
        await store.create_realm(Realm("acme", NOW + 5), [key(9)], NOW)
    again = await store.load_ring("acme")
    assert again == ring


async def test_compare_and_swap(store: RedisStore) -> None:
    ring = await new_realm(store)
    assert await store.save_ring(ring, [key(1)], [], NOW)
    # The same (now outdated) ring cannot be saved over the change.
    assert not await store.save_ring(ring, [key(2)], [key(0)], NOW)
    current = await store.load_ring("acme")
    assert current is not None
    assert {k.id for k in current.keys} == {key(0).id, key(1).id}
    assert current.version != ring.version
    assert await store.ring_version("acme") == current.version


async def test_save_into_deleted_realm(store: RedisStore) -> None:
    ring = await new_realm(store)
    assert await store.delete_realm("acme")
    with pytest.raises(RealmGone):
        await store.save_ring(ring, [key(1)], [], NOW)


async def test_delete_realm_removes_every_key(store: RedisStore, redis_client: redis.Redis) -> None:
    await new_realm(store, "acme", key(0), key(1))
    await new_realm(store, "keep", key(2))
    await store.put_client("acme", client(1))
    assert await store.claim_client_keys("acme", "jcl_1", ["thumbprint"]) is None
    assert await store.delete_realm("acme")
    assert not await store.delete_realm("acme")
    assert all("{acme}" not in k for k in redis_client.scan_iter())
    assert await store.load_ring("keep") is not None
    assert [r.name for r in (await store.list_realms(10, None)).items] == ["keep"]


async def test_delete_realm_deletes_its_admin_keys(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    """Every admin key scoped to the realm goes with it; other realms' and global keys stay."""
    await store.create_realm(Realm("acme", NOW, incarnation="one"), [key(0)], NOW)
    await store.create_realm(Realm("keep", NOW, incarnation="two"), [key(1)], NOW)
    scoped = [AdminKey(f"adm_{n}", "acme", NOW, incarnation="one") for n in range(3)]
    for n, admin_key in enumerate(scoped):
        await store.put_admin_key(f"digest-{n}", admin_key)
    kept = AdminKey("adm_keep", "keep", NOW, incarnation="two")
    await store.put_admin_key("digest-keep", kept)
    await store.put_admin_key("digest-global", AdminKey("adm_global", None, NOW))
    assert await store.get_admin_key("digest-0") == scoped[0]
    assert await store.delete_realm("acme")
    assert [await store.get_admin_key(f"digest-{n}") for n in range(3)] == [None] * 3
    assert await store.get_admin_key("digest-keep") == kept
    assert await store.get_admin_key("digest-global") is not None
    assert all("{acme}" not in k for k in redis_client.scan_iter())  # the index went too
    # A new realm of the old name is another incarnation, with no admin keys.
    await store.create_realm(Realm("acme", NOW, incarnation="three"), [key(2)], NOW)
    assert await store.get_realm("acme") == Realm("acme", NOW, incarnation="three")
    assert await store.get_admin_key("digest-0") is None


async def test_admin_key_only_for_the_realm_incarnation_that_exists(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    await store.create_realm(Realm("acme", NOW, incarnation="one"), [key(0)], NOW)
    for stale in (
        AdminKey("adm_1", "acme", NOW, incarnation="gone"),  # an earlier acme
        AdminKey("adm_2", "nope", NOW),  # no such realm
    ):
        with pytest.raises(RealmGone):
            await store.put_admin_key("digest", stale)
    assert await store.get_admin_key("digest") is None
    assert redis_client.scard("jwks:{acme}:admin-keys") == 0
    assert redis_client.exists("jwks:{nope}:admin-keys") == 0
    # A realm stored before incarnations existed takes keys without one.
    await store.create_realm(Realm("old", NOW), [key(1)], NOW)
    await store.put_admin_key("digest", AdminKey("adm_3", "old", NOW))
    assert await store.get_realm("old") == Realm("old", NOW)
    assert await store.delete_realm("old")
    assert await store.get_admin_key("digest") is None
    assert await store.get_realm("old") is None


async def test_ttl_prunes_record_and_index(store: RedisStore, redis_client: redis.Redis) -> None:
    ring = await new_realm(store)
    retiring = dataclasses.replace(key(0), status="expired", expires_at=NOW + 0.3)
    assert await store.save_ring(ring, [retiring], [], NOW)
    ttl = redis_client.pttl(f"jwks:{{acme}}:key:{key(0).id}")
    assert 0 < ttl <= 300
    await asyncio.sleep(0.45)
    pruned = await store.load_ring("acme")
    assert pruned is not None and pruned.keys == ()
    assert redis_client.zcard("jwks:{acme}:keys") == 0  # the index entry went too


async def test_paging_newest_first_without_skips_or_repeats(store: RedisStore) -> None:
    ring = await new_realm(store, "acme", *[key(n) for n in range(7)])
    seen: list[str] = []
    page = await store.page_keys("acme", 3, None)
    assert page is not None
    seen += [k.id for k in page.items]
    # Keys added between pages (newer) do not shift the next page.
    assert await store.save_ring(ring, [key(100), key(101)], [], NOW)
    while page.next_cursor:
        page = await store.page_keys("acme", 3, page.next_cursor)
        assert page is not None
        seen += [k.id for k in page.items]
    assert seen == [key(n).id for n in reversed(range(7))]


async def test_paging_skips_pruned_records(store: RedisStore, redis_client: redis.Redis) -> None:
    await new_realm(store, "acme", *[key(n) for n in range(5)])
    redis_client.delete(f"jwks:{{acme}}:key:{key(3).id}", f"jwks:{{acme}}:key:{key(2).id}")
    page = await store.page_keys("acme", 2, None)
    assert page is not None
    assert [k.id for k in page.items] == [key(4).id, key(1).id]
    assert redis_client.zcard("jwks:{acme}:keys") == 3


async def test_paging_rejects_foreign_cursor_and_unknown_realm(store: RedisStore) -> None:
    await new_realm(store)
    with pytest.raises(InvalidCursor):
        await store.page_keys("acme", 3, "((junk")
    assert await store.page_keys("nope", 3, None) is None


async def test_list_realms_pages_by_name(store: RedisStore) -> None:
    for name in ("c", "a", "b", "d"):
        await new_realm(store, name)
    first = await store.list_realms(3, None)
    assert [r.name for r in first.items] == ["a", "b", "c"]
    second = await store.list_realms(3, first.next_cursor)
    assert [r.name for r in second.items] == ["d"] and second.next_cursor is None


async def test_change_feed_names_changed_realm(store: RedisStore) -> None:
    feed = store.changes()
    assert await anext(feed) == RESUBSCRIBED  # subscribed
    ring = await new_realm(store, "acme")
    # Each message carries the ring's new version, so a cache that has it can skip it.
    assert await asyncio.wait_for(anext(feed), 2) == Change("acme", version=ring.version)
    assert await store.save_ring(ring, [key(1)], [], NOW)
    saved = await store.load_ring("acme")
    assert saved is not None and saved.version != ring.version
    assert await asyncio.wait_for(anext(feed), 2) == Change("acme", version=saved.version)
    await feed.aclose()  # type: ignore[attr-defined]


def client(n: int) -> Client:
    return Client(f"jcl_{n}", NOW + n, "client_secret_basic", client_secret_hash="00" * 32)


async def test_client_changes_are_published_with_their_version(store: RedisStore) -> None:
    feed = store.changes()
    assert await anext(feed) == RESUBSCRIBED
    await new_realm(store, "acme")
    assert (await asyncio.wait_for(anext(feed), 2)).realm == "acme"  # created
    # The store returns the message it published: the new version and the one it replaced.
    put = await store.put_client("acme", client(1))
    assert put.client_id == "jcl_1" and put.version and put.previous == ""
    assert await asyncio.wait_for(anext(feed), 2) == put
    assert await store.load_client("acme", "jcl_1") == VersionedClient(client(1), put.version)
    assert await store.client_versions(["acme", "none"]) == [put.version, ""]
    deleted = await store.delete_client("acme", client(1))
    assert deleted is not None and deleted.previous == put.version != deleted.version
    assert await asyncio.wait_for(anext(feed), 2) == deleted
    assert await store.load_client("acme", "jcl_1") == VersionedClient(None, deleted.version or "")
    assert await store.delete_client("acme", client(1)) is None  # gone already
    await store.delete_realm("acme")
    changes = {await asyncio.wait_for(anext(feed), 2) for _ in range(2)}
    assert changes == {Change("acme"), Change("acme", clients=True)}  # ring and clients go
    await feed.aclose()  # type: ignore[attr-defined]


async def test_ring_versions_in_one_call(store: RedisStore) -> None:
    a = await new_realm(store, "a")
    b = await new_realm(store, "b")
    assert await store.ring_versions(["b", "nope", "a"]) == [b.version, None, a.version]
    assert await store.ring_versions([]) == []


async def test_kek_check_first_writer_wins(store: RedisStore) -> None:
    assert await store.kek_check("one") == "one"
    assert await store.kek_check("two") == "one"


@pytest.mark.parametrize("protocol", [2, 3])
async def test_replies_do_not_depend_on_protocol(
    topology_url: str, store: RedisStore, protocol: int
) -> None:
    other = connect(topology_url, protocol=protocol)
    try:
        await new_realm(other)
        ring = await other.load_ring("acme")
        assert ring is not None and len(ring.keys) == 1
        page = await other.page_keys("acme", 5, None)
        assert page is not None and len(page.items) == 1
        assert await other.ring_version("acme") == ring.version
    finally:
        await other.close()


@pytest.mark.parametrize(
    "template", ["redis+cluster://127.0.0.1:{}", "redis+sentinel://127.0.0.1:{}/mymaster"]
)
async def test_unreachable_cluster_or_sentinel_is_store_unavailable(template: str) -> None:
    from tests._servers import free_port

    nobody = connect(template.format(free_port()))
    try:
        with pytest.raises(StoreUnavailable):
            await nobody.load_ring("acme")
    finally:
        await nobody.close()


async def test_a_public_key_is_owned_by_one_client_at_most(store: RedisStore) -> None:
    await new_realm(store)
    await new_realm(store, "other")
    await store.put_client("acme", client(1))
    await store.put_client("acme", client(2))
    assert await store.claim_client_keys("acme", "jcl_1", ["t1", "t2"]) is None
    assert await store.claim_client_keys("acme", "jcl_1", ["t1"]) is None  # its own again
    # All or nothing: t3 is not taken either when t2 belongs to jcl_1.
    assert await store.claim_client_keys("acme", "jcl_2", ["t3", "t2"]) == "jcl_1"
    assert await store.claim_client_keys("other", "jcl_2", ["t2"]) is None  # another realm
    await store.release_client_keys("acme", "jcl_2", ["t1"])  # not its key: no effect
    assert await store.claim_client_keys("acme", "jcl_2", ["t1"]) == "jcl_1"
    await store.release_client_keys("acme", "jcl_1", ["t1"])
    assert await store.claim_client_keys("acme", "jcl_2", ["t1", "t3"]) is None
    # A key of a client that no longer exists is free.
    await store.delete_client("acme", client(1))
    assert await store.claim_client_keys("acme", "jcl_2", ["t2"]) is None
