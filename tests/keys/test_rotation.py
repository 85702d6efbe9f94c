"""Rotation: next -> active -> expired -> pruned, stepped through with a fake clock."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from service import crypto
from service.keys import (
    GenerateKey,
    KeyManager,
    RotationTooSoon,
    UndeliveredSecret,
    policy,
    sealed_aad,
)
from service.models import KeyRecord, KeyRing, Realm
from service.storage.redis import RedisStore
from tests.conftest import KEK, FakeClock

NOW = 1_800_000_000.0
GRACE = 1000
LEAD = 305
INTERVAL = 600


def rec(n: int, status: str = "next") -> KeyRecord:
    return KeyRecord(id=f"jky_{n}", kid=f"jky_{n}", algo="rs256", status=status, created_at=NOW + n)  # type: ignore[arg-type]


def test_one_hundred_rotations_never_break_a_cached_verifier() -> None:
    """At every step: one key signs; every published key verifies; a verifier's JWKS
    cached up to LEAD seconds ago already held the signing key; retired keys verify
    through the grace and are gone after it."""
    clock = NOW
    ring = KeyRing(Realm("r", NOW), "v", (rec(0, "active"),))
    first = policy.rotate(ring, "rs256", rec(1), clock, GRACE, LEAD)
    assert first.retry_after == LEAD  # no next key yet: one is published, promotion waits
    ring = policy.applied(ring, first.change)
    published_at: dict[str, float] = {"jky_0": NOW, "jky_1": NOW}
    signed_by: dict[str, float] = {}
    for n in range(2, 102):
        clock += INTERVAL
        fresh = dataclasses.replace(rec(n), created_at=clock)
        outcome = policy.rotate(ring, "rs256", fresh, clock, GRACE, LEAD)
        assert outcome.retry_after is None
        ring = policy.applied(ring, outcome.change)
        published_at[f"jky_{n}"] = clock
        active = [k for k in ring.keys if k.status == "active"]
        assert len(active) == 1
        signer = active[0]
        signed_by[signer.id] = clock
        # Published at least LEAD before it signs: a JWKS cached LEAD ago has it.
        assert published_at[signer.id] + LEAD <= clock
        verifying = {k.id for k in ring.verifying(clock)}
        nexts = [k for k in ring.keys if k.status == "next"]
        assert len(nexts) == 1 and nexts[0].id in verifying
        # Every key that signed within the grace still verifies; older ones do not.
        for key_id, last_signed in signed_by.items():
            assert (key_id in verifying) == (
                clock < last_signed + INTERVAL + GRACE or key_id == signer.id
            )
        ring = KeyRing(ring.realm, ring.version, ring.verifying(clock))  # the TTL prunes


def test_promotion_waits_for_the_lead() -> None:
    ring = KeyRing(Realm("r", NOW), "v", (rec(0, "active"), rec(1)))
    early = policy.rotate(ring, "rs256", rec(2), NOW + 1 + LEAD - 10, GRACE, LEAD)
    assert early.retry_after == 10 and early.change == policy.RingChange()
    ready = policy.rotate(ring, "rs256", rec(2), NOW + 1 + LEAD, GRACE, LEAD)
    after = policy.applied(ring, ready.change)
    assert [k.id for k in after.keys if k.status == "active"] == ["jky_1"]
    assert [k.id for k in after.keys if k.status == "next"] == ["jky_2"]
    assert after.by_id("jky_0") is not None and after.by_id("jky_0").status == "expired"  # type: ignore[union-attr]


def manager(store: RedisStore, clock: FakeClock) -> KeyManager:
    return KeyManager(
        store, crypto.Sealer(base64.b64decode(KEK)), clock, grace=GRACE, publish_lead=LEAD
    )


async def test_manager_rotation_and_delete_promote_the_next_key(store: RedisStore) -> None:
    clock = FakeClock()
    m = manager(store, clock)
    await m.ensure_default_realm()
    first = (await m.ring("default")).active("rs256")
    assert first is not None
    with pytest.raises(RotationTooSoon) as too_soon:
        await m.rotate("default", "rs256")
    assert too_soon.value.retry_after == LEAD
    ring = await m.ring("default")
    (upcoming,) = [k for k in ring.keys if k.status == "next"]
    kids = [k["kid"] for k in json.loads((await m.jwks("default")).body)["keys"]]
    assert kids == [first.kid, upcoming.kid]  # published before it signs
    clock.advance(LEAD)
    promoted = await m.rotate("default", "rs256")
    assert promoted.id == upcoming.id
    # Deleting the active key promotes a next key published long enough.
    after = await m.ring("default")
    (queued,) = [k for k in after.keys if k.status == "next"]
    clock.advance(LEAD)
    await m.delete_key("default", promoted.id)
    final = (await m.ring("default")).active("rs256")
    assert final is not None and final.id == queued.id
    # Immediate: a brand-new key signs at once.
    urgent = await m.rotate("default", "rs256", immediate=True)
    assert urgent.status == "active" and urgent.id not in {queued.id, upcoming.id, first.id}


def test_rotate_endpoint(make_client: Callable[..., TestClient], admin: dict[str, str]) -> None:
    client = make_client(jwks_max_age=0)  # the lead is then 5 s
    first = client.post("/v1/realms/default/jwt_keys/rotate", json={"algo": "rs256"}, headers=admin)
    assert first.status_code == 409 and first.headers["retry-after"] == "5"
    assert first.headers["content-type"] == "application/problem+json"
    again = client.post("/v1/realms/default/jwt_keys/rotate", json={}, headers=admin)
    assert again.status_code == 409 and 1 <= int(again.headers["retry-after"]) <= 5
    urgent = client.post(
        "/v1/realms/default/jwt_keys/rotate", json={"immediate": True}, headers=admin
    )
    assert urgent.status_code == 200 and urgent.json()["status"] == "active"
    bad = client.post("/v1/realms/default/jwt_keys/rotate", json={"algo": "rs512"}, headers=admin)
    assert bad.status_code == 400 and bad.json()["field"] == "algo"


def test_rotation_due() -> None:
    active = dataclasses.replace(
        rec(0, "active"), public_jwk={"kty": "RSA"}, sealed_secret="v1.x", activated_at=NOW
    )
    ring = KeyRing(Realm("r", NOW), "v", (active,))
    assert policy.rotation_due(ring, "rs256", NOW, INTERVAL, LEAD) == "publish_next"
    assert policy.rotation_due(ring, "es256", NOW, INTERVAL, LEAD) is None  # no es256 key
    ring = KeyRing(ring.realm, "v", (active, rec(1)))
    assert policy.rotation_due(ring, "rs256", NOW + INTERVAL - 1, INTERVAL, LEAD) is None
    assert policy.rotation_due(ring, "rs256", NOW + INTERVAL, INTERVAL, LEAD) == "promote"
    fresh = KeyRing(
        ring.realm, "v", (active, dataclasses.replace(rec(1), created_at=NOW + INTERVAL))
    )
    assert policy.rotation_due(fresh, "rs256", NOW + INTERVAL, INTERVAL, LEAD) is None
    uploaded = dataclasses.replace(active, sealed_secret=None)
    assert (
        policy.rotation_due(KeyRing(ring.realm, "v", (uploaded,)), "rs256", NOW, INTERVAL, LEAD)
        is None
    )


async def test_scheduler_rotates_on_schedule_across_two_replicas(
    topology_store: RedisStore, topology_url: str
) -> None:
    """Two managers (replicas) run passes on one store; a fake clock steps 10 intervals.

    On each topology (single server, Cluster, Sentinel).
    """
    from service.keys import RotationScheduler
    from service.storage.redis import connect

    store = topology_store
    clock = FakeClock()
    other = connect(topology_url)
    try:
        replicas = [manager(store, clock), manager(other, clock)]
        await replicas[0].ensure_default_realm()
        schedulers = [RotationScheduler(m, INTERVAL) for m in replicas]
        signers: list[str] = []
        for _step in range(40):
            clock.advance(INTERVAL / 4)
            for m in replicas:
                m._cache.invalidate("default")
            await asyncio.gather(*(s.run_once() for s in schedulers))
            ring = await store.load_ring("default")
            assert ring is not None
            active = [k for k in ring.keys if k.status == "active"]
            nexts = [k for k in ring.keys if k.status == "next"]
            assert len(active) == 1 and len(nexts) == 1
            if not signers or signers[-1] != active[0].id:
                signers.append(active[0].id)
            # The signer was published (as next) at least the lead before it signs.
            assert active[0].created_at + LEAD <= clock.now() or len(signers) == 1
        assert 9 <= len(signers) - 1 <= 10  # about one rotation per interval
    finally:
        await other.close()


async def test_scheduler_honours_each_realms_interval(store: RedisStore) -> None:
    from service.keys import RotationScheduler

    clock = FakeClock()
    m = manager(store, clock)
    await m.ensure_default_realm()
    for name in ("fast", "frozen"):
        await m.create_realm(name)
    fast = LEAD + 95  # the shortest sensible interval is just over the lead
    await m.configure_realm("fast", rotation_interval=fast)
    await m.configure_realm("frozen", rotation_interval=0)
    scheduler = RotationScheduler(m, INTERVAL)
    active: dict[str, set[str]] = {"default": set(), "fast": set(), "frozen": set()}
    for _step in range(48):
        clock.advance(INTERVAL / 8)
        await scheduler.run_once()
        for realm, seen in active.items():
            key = (await m.ring(realm)).active("rs256")
            assert key is not None
            seen.add(key.id)
    assert len(active["frozen"]) == 1  # never rotated, and no next key published
    assert not [k for k in (await m.ring("frozen")).keys if k.status == "next"]
    assert len(active["fast"]) > len(active["default"]) >= 5
    assert (await m.realm("fast")).rotation_interval == fast


async def test_with_no_default_interval_only_realms_with_their_own_rotate(
    store: RedisStore,
) -> None:
    from service.keys import RotationScheduler

    clock = FakeClock()
    m = manager(store, clock)
    await m.ensure_default_realm()
    await m.create_realm("own")
    await m.configure_realm("own", rotation_interval=LEAD + 95)
    scheduler = RotationScheduler(m, 0)  # JWKS_ROTATION_INTERVAL=0
    assert scheduler.tick == 30
    before = {r: (await m.ring(r)).active("rs256") for r in ("default", "own")}
    for _step in range(10):
        clock.advance(LEAD + 95)
        await scheduler.run_once()
    after = {r: (await m.ring(r)).active("rs256") for r in ("default", "own")}
    assert after["default"] == before["default"]  # no interval: never rotated
    assert after["own"] != before["own"]


def test_the_app_runs_the_scheduler_when_the_default_interval_is_0(
    make_client: Callable[..., Any],
) -> None:
    client = make_client(rotation_interval=0)
    names = [loop.name for loop in client.app_state["services"].loops]
    assert "key-rotation" in names


async def test_hs256_never_gets_a_secret_nobody_receives(store: RedisStore) -> None:
    """Manual rotation returns the new secret; every other path that would make one
    (a next key, a replacement on delete, scheduled rotation) makes none."""
    from service.keys import RotationScheduler

    clock = FakeClock()
    m = manager(store, clock)
    await m.ensure_default_realm()
    first = await m.create_key("default", GenerateKey("hs256"))
    assert first.secret
    refused: list[Callable[[], Awaitable[object]]] = [
        lambda: m.rotate_key("default", "hs256"),  # a next key, published to nobody
        lambda: m.rotate("default", "hs256", immediate=True),  # would drop the secret
        lambda: m.delete_key("default", first.key.id),  # a replacement
        lambda: m.delete_key("default", first.key.id, force=True),
    ]
    for call in refused:
        with pytest.raises(UndeliveredSecret):
            await call()
    scheduler = RotationScheduler(m, INTERVAL)
    for _step in range(12):
        clock.advance(INTERVAL / 2)
        await scheduler.run_once()
    ring = await store.load_ring("default")
    assert ring is not None
    assert [(k.id, k.status) for k in ring.keys if k.algo == "hs256"] == [(first.key.id, "active")]
    assert len({k.id for k in ring.keys if k.algo == "rs256"}) > 2  # the scheduler did run
    rotated = await m.rotate_key("default", "hs256", immediate=True)
    assert rotated.secret and rotated.secret != first.secret and rotated.key.signs
    # The secret returned is the one stored (sealed) for the key that now signs.
    stored = crypto.Sealer(base64.b64decode(KEK)).open(
        rotated.key.sealed_secret or "", sealed_aad("default", rotated.key.id)
    )
    assert stored == rotated.secret.encode()
