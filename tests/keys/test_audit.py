"""What a ring change means as audit events (pure), and who scheduled rotation is."""

from __future__ import annotations

import base64
import dataclasses

from service import crypto
from service.audit import CLI, SCHEDULER, SYSTEM
from service.keys import KeyManager, RotationScheduler, policy
from service.keys.audit import ring_events
from service.models import KeyRecord, KeyRing, Realm
from service.storage.redis import RedisStore
from tests.conftest import KEK, FakeClock

NOW = 1_800_000_000.0
GRACE = 1000
LEAD = 305
INTERVAL = 600


def rec(name: str, status: str, algo: str = "rs256") -> KeyRecord:
    return KeyRecord(id=name, kid=f"kid-{name}", algo=algo, status=status, created_at=NOW)  # type: ignore[arg-type]


RING = KeyRing(
    Realm("acme", NOW), "v1", (rec("a", "active"), rec("n", "next"), rec("u", "verify_only"))
)


def summary(change: policy.RingChange, rotated: str | None = None) -> list[tuple[str, str]]:
    events = ring_events(RING, change, CLI, NOW, rotated=rotated)
    assert {(e.actor, e.address, e.realm, e.at) for e in events} <= {("cli", None, "acme", NOW)}
    return [(e.type, str(e.subject)) for e in events]


def test_each_key_a_change_touches_is_one_event() -> None:
    rotation = policy.rotate(RING, "rs256", rec("m", "next"), NOW + LEAD, GRACE, LEAD).change
    assert summary(rotation) == [("key.expired", "a"), ("key.rotated", "n"), ("key.created", "m")]
    (promoted,) = [e for e in ring_events(RING, rotation, CLI, NOW) if e.type == "key.rotated"]
    assert promoted.details == {
        "kid": "kid-n",
        "algo": "rs256",
        "status": "active",
        "previous": "a",
    }
    new = rec("x", "next")
    activated = policy.activate(RING, new, NOW, GRACE)
    assert summary(activated) == [("key.expired", "a"), ("key.created", "x")]
    assert summary(activated, rotated="x") == [("key.expired", "a"), ("key.rotated", "x")]
    upload = policy.add_verify_only(RING, rec("v", "verify_only", "es256"))
    assert summary(upload) == [("key.uploaded", "v")]
    assert summary(policy.remove(RING, "u", NOW, GRACE, force=False)) == [("key.expired", "u")]
    assert summary(policy.remove(RING, "u", NOW, GRACE, force=True)) == [("key.deleted", "u")]
    # A record written again unchanged in status is no event.
    unchanged = policy.RingChange(put=(dataclasses.replace(RING.keys[0], name="renamed"),))
    assert summary(unchanged) == []


async def test_scheduled_rotation_is_recorded_as_the_scheduler(store: RedisStore) -> None:
    clock = FakeClock()
    keys = KeyManager(
        store, crypto.Sealer(base64.b64decode(KEK)), clock, grace=GRACE, publish_lead=LEAD
    )
    await keys.ensure_default_realm()
    scheduler = RotationScheduler(keys, INTERVAL)
    assert await scheduler.run_once() == 1  # publishes a next key
    clock.advance(INTERVAL + LEAD)
    assert await scheduler.run_once() == 1  # promotes it, and publishes the one after
    page = await store.page_events("default", 100, None)
    assert page is not None
    events = page.items[::-1]  # oldest first
    assert [(e.type, e.actor) for e in events] == [
        ("realm.created", SYSTEM.id),
        ("key.created", SYSTEM.id),
        ("key.created", SCHEDULER.id),
        ("key.expired", SCHEDULER.id),
        ("key.rotated", SCHEDULER.id),
        ("key.created", SCHEDULER.id),
    ]
    assert events[4].subject == events[2].subject  # the key published first signs now
    assert {e.address for e in events} == {None}
