"""RingCache on a real store: the LRU bound, absent names, change messages, the
version check, grace ends, store outages and keys sealed with another KEK."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest

from service import crypto
from service.keys import GenerateKey, KeyManager
from service.models import KeyRing
from service.storage import Change, StoreUnavailable
from service.storage.redis import RedisStore
from tests.conftest import FakeClock

GRACE = 3600


def manager(
    store: RedisStore,
    clock: FakeClock | None = None,
    *,
    kek: bytes = bytes(range(32)),
    max_cached_realms: int = 10_000,
) -> KeyManager:
    return KeyManager(
        store,
        crypto.Sealer(kek),
        clock or FakeClock(),
        grace=GRACE,
        max_cached_realms=max_cached_realms,
    )


def count_ring_loads(store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ``store.load_ring`` from now on appends the realm's name to the list returned."""
    calls: list[str] = []
    load: Callable[[str], Awaitable[KeyRing | None]] = store.load_ring

    async def counted(realm: str) -> KeyRing | None:
        calls.append(realm)
        return await load(realm)

    monkeypatch.setattr(store, "load_ring", counted)
    return calls


def published_kids(body: bytes) -> list[str]:
    return [k["kid"] for k in json.loads(body)["keys"]]


async def test_the_least_recently_used_ring_goes_past_the_bound(store: RedisStore) -> None:
    m = manager(store, max_cached_realms=2)
    cache = m.cache
    for name in ("a", "b", "c"):
        await m.create_realm(name)
    assert await cache.get("a") is not None
    assert await cache.get("b") is not None
    assert cache.current("a") is not None  # "a" is used again: "b" is now the oldest
    assert await cache.get("c") is not None
    assert len(cache) == 2
    assert cache.current("b") is None
    assert cache.current("a") is not None
    assert cache.current("c") is not None


async def test_a_name_that_is_no_realm_is_read_once_until_the_realm_is_created(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manager(store)
    loads = count_ring_loads(store, monkeypatch)
    assert await m.cache.get("ghost") is None
    assert await m.cache.get("ghost") is None
    assert loads == ["ghost"]
    assert len(m.cache) == 0
    await m.create_realm("ghost")
    prepared = await m.cache.get("ghost")
    assert prepared is not None and prepared.ring.realm.name == "ghost"
    assert loads == ["ghost", "ghost"]


async def test_a_message_with_the_cached_version_keeps_the_entry_another_drops_it(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manager(store)
    await m.create_realm("acme")
    cache = m.cache
    prepared = await cache.get("acme")
    assert prepared is not None
    loads = count_ring_loads(store, monkeypatch)

    cache.changed(Change("acme", version=prepared.ring.version))
    assert cache.current("acme") is prepared
    assert await cache.get("acme") is prepared
    assert loads == []

    cache.changed(Change("acme", version="0123456789abcdef"))
    assert cache.current("acme") is None
    reloaded = await cache.get("acme")
    assert reloaded is not None and reloaded is not prepared
    assert loads == ["acme"]
    assert cache.current("acme") is reloaded


async def test_client_messages_leave_the_rings_alone(store: RedisStore) -> None:
    m = manager(store)
    await m.create_realm("acme")
    prepared = await m.cache.get("acme")
    m.cache.changed(Change("acme", clients=True, client_id="jcl_1", version="feed"))
    m.cache.changed(Change("acme", clients=True))
    assert m.cache.current("acme") is prepared


async def test_revalidate_drops_a_ring_changed_without_a_message(store: RedisStore) -> None:
    m = manager(store)
    await m.create_realm("acme")
    prepared = await m.cache.get("acme")
    assert prepared is not None

    await m.cache.revalidate()  # nothing changed: kept
    assert m.cache.current("acme") is prepared

    other = manager(store)  # another replica, whose message this cache never hears
    created = await other.create_key("acme", GenerateKey("es256"))
    assert m.cache.current("acme") is prepared  # not noticed yet
    await m.cache.revalidate()
    assert m.cache.current("acme") is None
    reloaded = await m.cache.get("acme")
    assert reloaded is not None
    assert reloaded.ring.version != prepared.ring.version
    assert created.key.kid in reloaded.verifiers
    assert "es256" in reloaded.signing


async def test_revalidate_forgets_absent_names(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manager(store)
    assert await m.cache.get("ghost") is None
    # Created by another replica; the creation message is lost.
    await manager(store).create_realm("ghost")
    assert await m.cache.get("ghost") is None  # still remembered as absent
    await m.cache.revalidate()
    assert await m.cache.get("ghost") is not None


async def test_an_expired_keys_grace_end_makes_the_entry_stale(store: RedisStore) -> None:
    clock = FakeClock()
    m = manager(store, clock)
    await m.create_realm("acme")
    first = await m.cache.get("acme")
    assert first is not None
    old = first.ring.active("rs256")
    assert old is not None

    new = await m.rotate("acme", "rs256", immediate=True)
    during = await m.cache.get("acme")
    assert during is not None
    assert during.stale_at == clock.now() + GRACE
    assert {old.kid, new.kid} <= set(during.verifiers)
    assert old.kid in published_kids(during.jwks.body)

    clock.advance(GRACE + 1)
    assert m.cache.current("acme") is None
    after = await m.cache.get("acme")
    assert after is not None and after is not during
    assert old.kid not in after.verifiers
    assert old.kid not in published_kids(after.jwks.body)
    assert new.kid in after.verifiers
    assert after.signing["rs256"].kid == new.kid


async def test_an_entry_rebuilt_after_a_grace_end_is_current_while_the_record_awaits_pruning(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store prunes an expired key by TTL, on its own clock; until it does (a
    replica whose clock is a little ahead, the latency of the save), the rebuilt
    entry, which no longer publishes the key, must not be stale at once."""
    clock = FakeClock()
    m = manager(store, clock)
    await m.create_realm("acme")
    await m.rotate("acme", "rs256", immediate=True)
    await m.cache.get("acme")
    clock.advance(GRACE + 1)  # the record's TTL (on the store's clock) has not run out
    rebuilt = await m.cache.get("acme")
    assert rebuilt is not None
    assert rebuilt.stale_at > clock.now()  # no key it publishes has a grace that ended
    loads = count_ring_loads(store, monkeypatch)
    assert m.cache.current("acme") is rebuilt
    assert await m.cache.get("acme") is rebuilt
    assert loads == []


async def test_while_the_store_is_down_the_cached_entry_is_served(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manager(store)
    await m.create_realm("acme")
    await m.create_realm("never-cached")
    prepared = await m.cache.get("acme")
    assert prepared is not None
    m.cache.invalidate("acme")

    async def down(realm: str) -> KeyRing | None:
        raise StoreUnavailable("down")

    monkeypatch.setattr(store, "load_ring", down)
    assert m.cache.current("acme") is None
    assert await m.cache.get("acme") is prepared
    with pytest.raises(StoreUnavailable):
        await m.cache.get("never-cached")

    monkeypatch.undo()  # back up: the outdated entry is replaced
    reloaded = await m.cache.get("acme")
    assert reloaded is not None and reloaded is not prepared
    assert m.cache.current("acme") is reloaded


async def test_a_key_sealed_with_another_kek_is_published_but_not_used(
    store: RedisStore,
) -> None:
    await manager(store).create_realm("acme")
    other = manager(store, kek=bytes(range(1, 33)))
    # Nothing raises; the key this KEK sealed is used, the other one only published.
    created = await other.create_key("acme", GenerateKey("es256"))
    prepared = await other.cache.get("acme")
    assert prepared is not None
    foreign = prepared.ring.active("rs256")
    assert foreign is not None
    assert set(prepared.signing) == {"es256"}
    assert set(prepared.verifiers) == {created.key.kid}
    assert sorted(published_kids(prepared.jwks.body)) == sorted([foreign.kid, created.key.kid])
    assert len(prepared.pems) == 1
