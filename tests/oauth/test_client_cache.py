"""ClientCache on a real store: reads saved, bounds, change messages, the version
check, single-flight loads and store outages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey

from service import crypto
from service.models import Client, KeyRecord, Realm
from service.oauth import client_cache
from service.oauth.client_cache import ClientCache, PreparedClient
from service.storage import Change, StoreUnavailable, VersionedClient
from service.storage.redis import RedisStore

NOW = 1_800_000_000.0


def client(n: int, **kw: Any) -> Client:
    return Client(f"jcl_{n}", NOW + n, "client_secret_basic", client_secret_hash="00" * 32, **kw)


def key_client(n: int) -> Client:
    """A private_key_jwt client with one RSA public key (kid "k1")."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = {**RSAKey.import_key(private.public_key()).as_dict(), "kid": "k1"}
    return Client(f"jcl_{n}", NOW + n, "private_key_jwt", jwks=(jwk,))


async def new_realm(store: RedisStore, name: str = "acme") -> None:
    first = KeyRecord(id="jky_0", kid="kid-0", algo="rs256", status="active", created_at=NOW)
    await store.create_realm(Realm(name, NOW), [first], NOW)


def count_client_loads(store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ``store.load_client`` from now on appends the client_id to the list returned."""
    calls: list[str] = []
    load: Callable[[str, str], Awaitable[VersionedClient]] = store.load_client

    async def counted(realm: str, client_id: str) -> VersionedClient:
        calls.append(client_id)
        return await load(realm, client_id)

    monkeypatch.setattr(store, "load_client", counted)
    return calls


async def test_a_cached_client_costs_no_store_read_and_its_keys_are_imported_once(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_realm(store)
    registered = key_client(1)
    await store.put_client("acme", registered)
    loads = count_client_loads(store, monkeypatch)
    prepared_calls: list[str] = []
    prepare = client_cache.prepare_client

    def counted_prepare(c: Client) -> PreparedClient:
        prepared_calls.append(c.client_id)
        return prepare(c)

    monkeypatch.setattr(client_cache, "prepare_client", counted_prepare)
    cache = ClientCache(store)

    first = await cache.get("acme", "jcl_1")
    assert first is not None
    assert first.client == registered
    assert len(first.keys) == 1
    assert first.keys[0].jwk["kid"] == "k1"
    assert isinstance(first.keys[0].handle, crypto.VerificationKey)
    for _ in range(3):
        assert await cache.get("acme", "jcl_1") is first
    assert loads == ["jcl_1"]
    assert prepared_calls == ["jcl_1"]
    assert len(cache) == 1


async def test_the_least_recently_used_client_goes_past_the_bound(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_realm(store)
    for n in (1, 2, 3):
        await store.put_client("acme", client(n))
    cache = ClientCache(store, max_clients=2)
    loads = count_client_loads(store, monkeypatch)
    await cache.get("acme", "jcl_1")
    await cache.get("acme", "jcl_2")
    await cache.get("acme", "jcl_1")  # used again: jcl_2 is now the oldest
    await cache.get("acme", "jcl_3")
    assert len(cache) == 2
    assert loads == ["jcl_1", "jcl_2", "jcl_3"]
    assert await cache.get("acme", "jcl_1") is not None
    assert await cache.get("acme", "jcl_3") is not None
    assert loads == ["jcl_1", "jcl_2", "jcl_3"]
    assert await cache.get("acme", "jcl_2") is not None  # it was the one dropped
    assert loads == ["jcl_1", "jcl_2", "jcl_3", "jcl_2"]


async def test_unknown_ids_are_read_once_each_and_at_most_max_absent_are_remembered(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_realm(store)
    await store.put_client("acme", client(1))
    cache = ClientCache(store, max_clients=10, max_absent=2)
    assert await cache.get("acme", "jcl_1") is not None
    loads = count_client_loads(store, monkeypatch)
    for unknown in ("u1", "u1", "u2", "u2"):
        assert await cache.get("acme", unknown) is None
    assert loads == ["u1", "u2"]
    assert await cache.get("acme", "u3") is None  # a third: the first one goes
    assert loads == ["u1", "u2", "u3"]
    assert await cache.get("acme", "u3") is None
    assert await cache.get("acme", "u2") is None
    assert loads == ["u1", "u2", "u3"]
    assert await cache.get("acme", "u1") is None
    assert loads == ["u1", "u2", "u3", "u1"]
    # Unknown ids take no room from the known clients, nor push them out.
    assert len(cache) == 1
    assert await cache.get("acme", "jcl_1") is not None
    assert loads == ["u1", "u2", "u3", "u1"]


async def test_a_message_drops_the_client_it_names_unless_cached_at_its_version(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_realm(store)
    await store.put_client("acme", client(1))
    cache = ClientCache(store)
    before = await cache.get("acme", "jcl_1")
    assert before is not None
    renamed = client(1, client_name="renamed")
    change = await store.put_client("acme", renamed)  # the message it publishes
    loads = count_client_loads(store, monkeypatch)

    cache.changed(change)
    after = await cache.get("acme", "jcl_1")
    assert after is not None and after.client == renamed
    assert loads == ["jcl_1"]

    cache.changed(change)  # the same message again: the entry was read at that version
    assert await cache.get("acme", "jcl_1") is after
    assert loads == ["jcl_1"]


async def test_a_message_for_a_deleted_client_drops_it(store: RedisStore) -> None:
    await new_realm(store)
    await store.put_client("acme", client(1))
    cache = ClientCache(store)
    assert await cache.get("acme", "jcl_1") is not None
    change = await store.delete_client("acme", client(1))
    assert change is not None
    cache.changed(change)
    assert await cache.get("acme", "jcl_1") is None
    assert len(cache) == 0


async def test_a_load_at_a_newer_version_caches_nothing_until_a_message_brings_it_in_step(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_realm(store)
    await store.put_client("acme", client(1))
    cache = ClientCache(store)
    assert await cache.get("acme", "jcl_1") is not None  # in step with that version
    change = await store.put_client("acme", client(2))  # its message is on the way
    loads = count_client_loads(store, monkeypatch)
    assert await cache.get("acme", "jcl_2") is not None
    assert await cache.get("acme", "jcl_2") is not None
    assert loads == ["jcl_2", "jcl_2"]
    assert len(cache) == 1

    cache.changed(change)
    assert await cache.get("acme", "jcl_2") is not None
    assert await cache.get("acme", "jcl_2") is not None
    assert await cache.get("acme", "jcl_1") is not None
    assert loads == ["jcl_2", "jcl_2", "jcl_2"]
    assert len(cache) == 2


async def test_a_load_at_a_newer_version_caches_nothing_until_revalidate_brings_it_in_step(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_realm(store)
    await store.put_client("acme", client(1))
    cache = ClientCache(store)
    assert await cache.get("acme", "jcl_1") is not None
    await store.put_client("acme", client(2))  # its message is lost
    loads = count_client_loads(store, monkeypatch)
    assert await cache.get("acme", "jcl_2") is not None
    assert await cache.get("acme", "jcl_2") is not None
    assert loads == ["jcl_2", "jcl_2"]

    await cache.revalidate()
    assert await cache.get("acme", "jcl_2") is not None
    assert await cache.get("acme", "jcl_2") is not None
    assert loads == ["jcl_2", "jcl_2", "jcl_2"]


async def test_revalidate_drops_a_realms_clients_when_its_version_moved_without_a_message(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_realm(store)
    await store.put_client("acme", client(1))
    await store.put_client("acme", client(2))
    cache = ClientCache(store)
    assert await cache.get("acme", "jcl_1") is not None
    assert await cache.get("acme", "jcl_2") is not None

    await cache.revalidate()  # nothing moved: kept
    loads = count_client_loads(store, monkeypatch)
    assert await cache.get("acme", "jcl_1") is not None
    assert loads == []

    renamed = client(1, client_name="renamed")
    await store.put_client("acme", renamed)  # no message
    await cache.revalidate()
    assert len(cache) == 0
    after = await cache.get("acme", "jcl_1")
    assert after is not None and after.client == renamed
    assert loads == ["jcl_1"]


async def test_revalidate_forgets_unknown_ids(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_realm(store)
    cache = ClientCache(store)
    assert await cache.get("acme", "jcl_1") is None
    await store.put_client("acme", client(1))  # its message is lost
    assert await cache.get("acme", "jcl_1") is None  # still remembered as unknown
    loads = count_client_loads(store, monkeypatch)
    await cache.revalidate()
    found = await cache.get("acme", "jcl_1")
    assert found is not None and found.client == client(1)
    assert loads == ["jcl_1"]


async def test_a_lost_message_is_still_found_by_revalidate_after_a_later_message(
    store: RedisStore,
) -> None:
    """The periodic version check is there for lost messages (a Cluster bus that
    drops a PUBLISH, a revalidation that failed after a resubscribe): a message
    about another client, arriving before the check, must not hide the loss."""
    await new_realm(store)
    await store.put_client("acme", client(1))
    cache = ClientCache(store)
    assert await cache.get("acme", "jcl_1") is not None
    renamed = client(1, client_name="renamed")
    await store.put_client("acme", renamed)  # this message is lost
    cache.changed(await store.put_client("acme", client(2)))  # this one arrives
    await cache.revalidate()
    after = await cache.get("acme", "jcl_1")
    assert after is not None
    assert after.client == renamed


async def test_a_realm_wide_message_drops_that_realms_clients_only(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_realm(store, "acme")
    await new_realm(store, "beta")
    for realm in ("acme", "beta"):
        for n in (1, 2):
            await store.put_client(realm, client(n))
    cache = ClientCache(store)
    kept = await cache.get("beta", "jcl_1")
    for n in (1, 2):
        assert await cache.get("acme", f"jcl_{n}") is not None
    assert len(cache) == 3

    cache.changed(Change("acme", clients=True))
    assert len(cache) == 1
    loads = count_client_loads(store, monkeypatch)
    assert await cache.get("beta", "jcl_1") is kept
    assert loads == []
    assert await cache.get("acme", "jcl_1") is not None
    assert loads == ["jcl_1"]


async def test_ring_messages_leave_the_clients_alone(store: RedisStore) -> None:
    await new_realm(store)
    await store.put_client("acme", client(1))
    cache = ClientCache(store)
    before = await cache.get("acme", "jcl_1")
    cache.changed(Change("acme", version="0123456789abcdef"))
    cache.changed(Change("acme"))
    assert await cache.get("acme", "jcl_1") is before


async def test_concurrent_gets_of_an_uncached_client_make_one_store_read(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_realm(store)
    await store.put_client("acme", client(1))
    cache = ClientCache(store)
    loads = count_client_loads(store, monkeypatch)
    results = await asyncio.gather(*(cache.get("acme", "jcl_1") for _ in range(5)))
    assert loads == ["jcl_1"]
    assert results[0] is not None
    assert all(r is results[0] for r in results)


async def test_while_the_store_is_down_cached_clients_are_served_others_fail(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_realm(store)
    await store.put_client("acme", client(1))
    await store.put_client("acme", client(2))
    cache = ClientCache(store)
    cached = await cache.get("acme", "jcl_1")
    assert cached is not None

    async def down(realm: str, client_id: str) -> VersionedClient:
        raise StoreUnavailable("down")

    monkeypatch.setattr(store, "load_client", down)
    assert await cache.get("acme", "jcl_1") is cached
    with pytest.raises(StoreUnavailable):
        await cache.get("acme", "jcl_2")
    monkeypatch.undo()
    found = await cache.get("acme", "jcl_2")
    assert found is not None and found.client == client(2)
