"""KeyManager on a real store: concurrent writers, replacement on delete, pruning."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from starlette.testclient import TestClient

from service import crypto
from service.keys import GenerateKey, KeyManager
from service.storage.redis import RedisStore
from tests.conftest import KEK, FakeClock


def manager(store: RedisStore, clock: FakeClock | None = None, grace: int = 3600) -> KeyManager:
    return KeyManager(
        store, crypto.Sealer(base64.b64decode(KEK)), clock or FakeClock(), grace=grace
    )


def test_concurrent_creations_on_two_instances_leave_one_active_key_per_algo(
    make_client: Callable[..., TestClient], admin: dict[str, str]
) -> None:
    apps = [make_client(), make_client()]
    algos = ["rs256", "es256", "eddsa", "hs256"] * 5

    def create(n: int) -> int:
        response = apps[n % 2].post(
            "/v1/realms/default/jwt_keys", json={"algo": algos[n]}, headers=admin
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(create, range(20)))
    assert statuses == [201] * 20
    keys = apps[0].get("/v1/realms/default/jwt_keys?limit=100", headers=admin).json()["data"]
    assert len(keys) == 21  # the default realm's first key, and the 20 new ones
    active = Counter(k["algo"] for k in keys if k["status"] == "active")
    assert active == {"rs256": 1, "es256": 1, "eddsa": 1, "hs256": 1}
    assert sum(k["status"] == "expired" for k in keys) == 17


async def test_two_managers_racing_never_make_two_active_keys(
    topology_store: RedisStore, topology_url: str
) -> None:
    """On each topology (single server, Cluster, Sentinel)."""
    from service.storage.redis import connect

    store = topology_store
    other_store = connect(topology_url)
    try:
        a, b = manager(store), manager(other_store)
        await a.ensure_default_realm()
        await asyncio.gather(
            *(m.create_key("default", GenerateKey("es256")) for m in (a, b) for _ in range(8))
        )
        ring = await store.load_ring("default")
        assert ring is not None
        assert sum(1 for k in ring.keys if k.algo == "es256" and k.status == "active") == 1
        assert sum(1 for k in ring.keys if k.algo == "es256") == 16
    finally:
        await other_store.close()


async def test_deleting_the_active_key_activates_a_replacement_first(store: RedisStore) -> None:
    m = manager(store)
    await m.ensure_default_realm()
    ring = await store.load_ring("default")
    assert ring is not None
    old = ring.active("rs256")
    assert old is not None
    retired = await m.delete_key("default", old.id)
    assert retired.status == "expired" and retired.expires_at is not None
    after = await store.load_ring("default")
    assert after is not None
    new = after.active("rs256")
    assert new is not None and new.id != old.id
    # Force-deleting the new active key replaces it too, and removes it at once.
    gone = await m.delete_key("default", new.id, force=True)
    assert gone.id == new.id
    final = await store.load_ring("default")
    assert final is not None
    assert final.by_id(new.id) is None
    replacement = final.active("rs256")
    assert replacement is not None and replacement.id not in {old.id, new.id}


async def test_expired_key_is_pruned_by_ttl_after_the_grace(store: RedisStore) -> None:
    clock = FakeClock(time.time())
    m = manager(store, clock, grace=1)
    await m.ensure_default_realm()
    first = (await m.ring("default")).active("rs256")
    assert first is not None
    await m.create_key("default", GenerateKey("rs256"))
    kids = [k["kid"] for k in json.loads((await m.jwks("default")).body)["keys"]]
    assert first.kid in kids  # still published during the grace
    await asyncio.sleep(1.2)
    clock.advance(1.2)
    ring = await store.load_ring("default")
    assert ring is not None and ring.by_id(first.id) is None
    page = await m.list_keys("default", 10, None)
    assert first.id not in [k.id for k in page.items]
    jwks = (await m.jwks("default")).body.decode()
    assert first.kid not in jwks


async def test_kek_mismatch_is_refused(store: RedisStore) -> None:
    await manager(store).check_kek()
    other = KeyManager(store, crypto.Sealer(crypto.new_kek()), FakeClock(), grace=10)
    try:
        await other.check_kek()
    except crypto.SealError as exc:
        assert "JWKS_KEK" in exc.detail
    else:
        raise AssertionError("a second KEK was accepted")
