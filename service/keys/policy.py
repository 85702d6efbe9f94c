"""Pure decisions about a key ring: no I/O, no clock of their own, no randomness.

Each function takes the ring as loaded and returns the records to write and to
delete. The manager may call them more than once for one request (a lost
compare-and-swap means a fresh ring and a fresh decision), so they must not have
side effects.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from service.keys.errors import KeyNotFound, KidInUse
from service.models import Algo, KeyRecord, KeyRing

__all__ = [
    "RingChange",
    "activate",
    "add_verify_only",
    "applied",
    "needs_replacement",
    "remove",
]


@dataclass(frozen=True)
class RingChange:
    """Records to write (new or changed) and records to delete."""

    put: tuple[KeyRecord, ...] = ()
    delete: tuple[KeyRecord, ...] = ()

    def __add__(self, other: RingChange) -> RingChange:
        return RingChange(self.put + other.put, self.delete + other.delete)


def _check_kid(ring: KeyRing, key: KeyRecord) -> None:
    if ring.by_kid(key.kid) is not None:
        raise KidInUse(key.kid)


def _retire(key: KeyRecord, now: float, grace: int) -> KeyRecord:
    # It stops signing now and keeps verifying (and being published) for the
    # grace, after which the record's TTL prunes it.
    return dataclasses.replace(key, status="expired", retired_at=now, expires_at=now + grace)


def activate(ring: KeyRing, key: KeyRecord, now: float, grace: int) -> RingChange:
    """``key`` becomes the active signing key of its algo; the previous one retires."""
    _check_kid(ring, key)
    current = ring.active(key.algo)
    retired = (_retire(current, now, grace),) if current else ()
    return RingChange(put=(*retired, dataclasses.replace(key, status="active")))


def add_verify_only(ring: KeyRing, key: KeyRecord) -> RingChange:
    """An uploaded public key joins the ring; it verifies and is published, never signs."""
    _check_kid(ring, key)
    return RingChange(put=(dataclasses.replace(key, status="verify_only"),))


def remove(ring: KeyRing, key_id: str, now: float, grace: int, *, force: bool) -> RingChange:
    """Retire a key (it verifies through the grace), or with ``force`` delete it now.

    Retiring a key that is already expired changes nothing.
    """
    key = ring.by_id(key_id)
    if key is None:
        raise KeyNotFound(key_id)
    if force:
        return RingChange(delete=(key,))
    if key.expired:
        return RingChange()
    return RingChange(put=(_retire(key, now, grace),))


def needs_replacement(ring: KeyRing, key_id: str) -> Algo | None:
    """The algo that loses its signing key if ``key_id`` goes, if any.

    Signing never stops: the caller generates a replacement and activates it in
    the same compare-and-swap.
    """
    key = ring.by_id(key_id)
    return key.algo if key is not None and key.signs else None


def applied(ring: KeyRing, change: RingChange) -> KeyRing:
    """The ring as it will be once ``change`` is saved (to compose decisions)."""
    gone = {k.id for k in change.delete} | {k.id for k in change.put}
    kept = tuple(k for k in ring.keys if k.id not in gone)
    return dataclasses.replace(ring, keys=kept + change.put)
