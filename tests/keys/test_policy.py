"""Pure ring decisions: activation, retirement, force removal, kid uniqueness."""

from __future__ import annotations

import dataclasses

import pytest

from service import crypto
from service.keys import DuplicateKey, KeyNotFound, KidInUse, policy
from service.models import KeyRecord, KeyRing, Realm

NOW = 1_800_000_000.0
GRACE = 3600


def rec(n: int, algo: str = "rs256", status: str = "active", kid: str | None = None) -> KeyRecord:
    return KeyRecord(
        id=f"jky_{n}",
        kid=kid or f"jky_{n}",
        algo=algo,
        status=status,
        created_at=NOW + n,  # type: ignore[arg-type]
    )


def ring(*keys: KeyRecord) -> KeyRing:
    return KeyRing(Realm("r", NOW), "v1", keys)


def test_activate_retires_the_previous_key_of_the_same_algo_only() -> None:
    r = ring(rec(1), rec(2, "es256"))
    after = policy.applied(r, policy.activate(r, rec(3, status="next"), NOW, GRACE))
    active = after.active("rs256")
    assert active is not None and active.id == "jky_3" and active.activated_at == NOW
    old = after.by_id("jky_1")
    assert old is not None and old.status == "expired"
    assert old.retired_at == NOW and old.expires_at == NOW + GRACE
    assert after.active("es256") == rec(2, "es256")


def test_activate_refuses_a_kid_in_use() -> None:
    r = ring(rec(1), rec(2, status="verify_only", kid="tenant"))
    with pytest.raises(KidInUse):
        policy.activate(r, rec(3, kid="tenant"), NOW, GRACE)
    with pytest.raises(KidInUse):
        policy.add_verify_only(r, rec(4, kid="tenant"))


def test_remove_retires_then_is_idempotent() -> None:
    r = ring(rec(1))
    change = policy.remove(r, "jky_1", NOW, GRACE, force=False)
    (retired,) = change.put
    assert retired.status == "expired" and retired.expires_at == NOW + GRACE
    assert (
        policy.remove(policy.applied(r, change), "jky_1", NOW + 5, GRACE, force=False)
        == policy.RingChange()
    )


def test_force_removal_deletes() -> None:
    r = ring(rec(1), rec(2, status="expired"))
    assert policy.remove(r, "jky_2", NOW, GRACE, force=True).delete == (rec(2, status="expired"),)
    with pytest.raises(KeyNotFound):
        policy.remove(r, "jky_9", NOW, GRACE, force=True)


def test_only_a_signing_key_needs_a_replacement() -> None:
    r = ring(rec(1), rec(2, status="verify_only"), rec(3, status="expired"), rec(4, "hs256"))
    assert policy.needs_replacement(r, "jky_1") == "rs256"
    assert policy.needs_replacement(r, "jky_4") == "hs256"
    assert policy.needs_replacement(r, "jky_2") is None
    assert policy.needs_replacement(r, "jky_3") is None
    assert policy.needs_replacement(r, "jky_9") is None


def test_many_activations_keep_exactly_one_active_key() -> None:
    r = ring(rec(0))
    for n in range(1, 101):
        r = policy.applied(r, policy.activate(r, rec(n), NOW + n, GRACE))
        assert [k.id for k in r.keys if k.status == "active"] == [f"jky_{n}"]
        # Every retired key still verifies within its grace, and not after.
        assert {k.id for k in r.verifying(NOW + n)} == {f"jky_{i}" for i in range(n + 1)}
    assert {k.id for k in r.verifying(NOW + 100 + GRACE)} == {"jky_100"}


def test_check_not_duplicate_compares_live_keys_by_thumbprint() -> None:
    """Issue 9: the same public key, under another kid, is refused naming the first key."""
    jwk = dict(crypto.generate_key_pair("es256").public_jwk)
    other = dict(crypto.generate_key_pair("es256").public_jwk)
    stored = dataclasses.replace(rec(1, "es256", "verify_only"), public_jwk={**jwk, "kid": "a"})
    again = dataclasses.replace(rec(2, "es256", "verify_only"), public_jwk={**jwk, "kid": "b"})
    with pytest.raises(DuplicateKey, match="jky_1"):
        policy.check_not_duplicate(ring(stored), again, NOW)
    policy.check_not_duplicate(ring(stored), dataclasses.replace(again, public_jwk=other), NOW)
    # A key past its grace no longer counts (the store's TTL is about to prune it).
    gone = dataclasses.replace(stored, status="expired", expires_at=NOW - 1)
    policy.check_not_duplicate(ring(gone), again, NOW)
