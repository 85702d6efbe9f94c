"""The audit event streams on every topology (single server, Cluster, Sentinel): the
events a change carries are written with it, or not at all; capped; newest first;
the realm's stream goes with the realm; the global stream outlives it."""

from __future__ import annotations

import pytest
import redis

from service.audit import Actor, AuditEvent, new_event
from service.models import AdminKey, Client, KeyRecord, Realm
from service.storage import InvalidCursor, RealmExists, RealmGone
from service.storage.redis import RedisStore, connect

NOW = 1_800_000_000.123456
WHO = Actor("adm_test", "192.0.2.7")


@pytest.fixture
def store(topology_store: RedisStore) -> RedisStore:
    return topology_store


@pytest.fixture
def redis_client(topology_client: redis.Redis) -> redis.Redis:
    return topology_client


def key(n: int, status: str = "active") -> KeyRecord:
    return KeyRecord(
        id=f"jky_{n:022d}",
        kid=f"kid-{n}",
        algo="rs256",
        status=status,  # type: ignore[arg-type]
        created_at=NOW + n,
    )


def event(subject: str, realm: str | None = "acme") -> AuditEvent:
    return new_event("key.created", WHO, realm, NOW, subject, kid=subject, algo="rs256")


async def subjects(store: RedisStore, realm: str | None) -> list[str | None]:
    page = await store.page_events(realm, 100, None)
    assert page is not None and page.next_cursor is None
    return [e.subject for e in page.items]


async def test_every_change_writes_its_events_with_it(store: RedisStore) -> None:
    realm = Realm("acme", NOW, incarnation="one")
    created = event("created")
    await store.create_realm(realm, [key(0)], NOW, events=[created, event("first")])
    ring = await store.load_ring("acme")
    assert ring is not None
    assert await store.save_ring(ring, [key(1)], [], NOW, events=[event("saved")])
    await store.update_realm(realm, events=[event("updated")])
    client = Client("jcl_1", NOW, "client_secret_basic")
    await store.put_client("acme", client, events=[event("put")])
    assert await store.delete_client("acme", client, events=[event("deleted")])
    admin = AdminKey("adm_1", "acme", NOW, incarnation="one")
    await store.put_admin_key("digest-1", admin, events=[event("admin")])
    assert await subjects(store, "acme") == [
        "admin",
        "deleted",
        "put",
        "updated",
        "saved",
        "first",
        "created",
    ]
    page = await store.page_events("acme", 100, None)
    assert page is not None
    assert page.items[-1] == created  # every field as written, the timestamp exactly


async def test_a_change_not_made_writes_no_event(store: RedisStore) -> None:
    await store.create_realm(Realm("acme", NOW), [key(0)], NOW, events=[event("created")])
    ring = await store.load_ring("acme")
    assert ring is not None
    assert await store.save_ring(ring, [key(1)], [], NOW)
    # The ring moved: the compare-and-swap fails, and so does its event.
    assert not await store.save_ring(ring, [key(2)], [], NOW, events=[event("lost race")])
    with pytest.raises(RealmExists):
        await store.create_realm(Realm("acme", NOW), [key(3)], NOW, events=[event("again")])
    with pytest.raises(RealmGone):
        await store.update_realm(Realm("nope", NOW), events=[event("gone", "nope")])
    with pytest.raises(RealmGone):
        await store.put_client("nope", Client("jcl_1", NOW, "client_secret_basic"))
    missing = Client("jcl_none", NOW, "client_secret_basic")
    assert await store.delete_client("acme", missing, events=[event("no client")]) is None
    with pytest.raises(RealmGone):
        stale = AdminKey("adm_1", "acme", NOW, incarnation="another")
        await store.put_admin_key("digest-1", stale, events=[event("stale admin key")])
    assert await subjects(store, "acme") == ["created"]
    assert await store.page_events("nope", 10, None) is None


async def test_pages_newest_first_with_a_cursor(store: RedisStore) -> None:
    await store.create_realm(Realm("acme", NOW), [key(0)], NOW, events=[event("e0")])
    for n in range(1, 7):
        await store.update_realm(Realm("acme", NOW), events=[event(f"e{n}")])
    seen: list[str | None] = []
    cursor: str | None = None
    while True:
        page = await store.page_events("acme", 4, cursor)
        assert page is not None and len(page.items) <= 4
        seen += [e.subject for e in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"e{n}" for n in range(6, -1, -1)]
    for bad in ("nope", "1-2-3", "0000000000000:jky_1"):
        with pytest.raises(InvalidCursor):
            await store.page_events("acme", 4, bad)


async def test_the_cap_is_exact(topology_url: str, redis_client: redis.Redis) -> None:
    store = connect(topology_url, max_events=3)
    try:
        await store.create_realm(Realm("acme", NOW), [key(0)], NOW, events=[event("e0")])
        for n in range(1, 6):
            await store.update_realm(Realm("acme", NOW), events=[event(f"e{n}")])
        await store.append_global_events([event(f"g{n}", None) for n in range(5)])
        assert await subjects(store, "acme") == ["e5", "e4", "e3"]
        assert await subjects(store, None) == ["g4", "g3", "g2"]
        assert redis_client.xlen("jwks:{acme}:events") == 3
        assert redis_client.xlen("jwks:events") == 3
    finally:
        await store.close()


async def test_the_stream_goes_with_the_realm_and_the_global_one_stays(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    await store.create_realm(Realm("acme", NOW), [key(0)], NOW, events=[event("created")])
    await store.append_global_events([event("realm copy")])
    await store.put_admin_key(
        "digest-global", AdminKey("adm_g", None, NOW), events=[event("global key", None)]
    )
    assert redis_client.exists("jwks:{acme}:events")
    assert await store.delete_realm("acme")
    assert not [k for k in redis_client.scan_iter() if "{acme}" in k]
    assert await store.page_events("acme", 10, None) is None
    assert await subjects(store, None) == ["global key", "realm copy"]
    # A new realm of the old name starts with a stream of its own.
    await store.create_realm(Realm("acme", NOW), [key(1)], NOW, events=[event("new")])
    assert await subjects(store, "acme") == ["new"]
