"""Pure decisions about a key ring: no I/O, no clock of their own, no randomness.

Each function takes the ring as loaded and returns the records to write and to
delete. The manager may call them more than once for one request (a lost
compare-and-swap means a fresh ring and a fresh decision), so they must not have
side effects.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Final, Literal

from service import crypto
from service.keys.errors import DuplicateKey, KeyNotFound, KidInUse, TooManyKeys
from service.models import ASYMMETRIC_ALGOS, Algo, KeyRecord, KeyRing

__all__ = [
    "RingChange",
    "Rotation",
    "activate",
    "add_verify_only",
    "applied",
    "check_not_duplicate",
    "check_room",
    "needs_replacement",
    "ready_next",
    "remove",
    "rotate",
]


@dataclass(frozen=True)
class RingChange:
    """Records to write (new or changed) and records to delete."""

    put: tuple[KeyRecord, ...] = ()
    delete: tuple[KeyRecord, ...] = ()

    def __add__(self, other: RingChange) -> RingChange:
        return RingChange(self.put + other.put, self.delete + other.delete)


def _check_kid(ring: KeyRing, key: KeyRecord) -> None:
    found = ring.by_kid(key.kid)
    if found is not None and found.id != key.id:
        raise KidInUse(key.kid)


def _retire(key: KeyRecord, now: float, grace: int) -> KeyRecord:
    # It stops signing now and keeps verifying (and being published) for the
    # grace, after which the record's TTL prunes it.
    return dataclasses.replace(key, status="expired", retired_at=now, expires_at=now + grace)


#: Keys in one ring, expired ones included. Every ring change rewrites the ring and
#: every verifier downloads its public half, so a realm does not grow without bound;
#: rotation always has room (it is never refused by this limit).
MAX_KEYS_PER_REALM: Final = 1000


def check_room(ring: KeyRing) -> None:
    """Refuse a new key (created or uploaded) when the ring is full.

    :raises TooManyKeys:
    """
    if len(ring.keys) >= MAX_KEYS_PER_REALM:
        raise TooManyKeys(MAX_KEYS_PER_REALM)


def check_not_duplicate(ring: KeyRing, key: KeyRecord, now: float) -> None:
    """Refuse an uploaded public key that a live key of the ring already is.

    Compared by RFC 7638 thumbprint, so the same key sent as PEM, OpenSSH or JWK,
    under any kid, is one key: a second copy would only publish it twice in the JWKS.
    Only keys of the same algo can be the same key, so only those are hashed.

    :raises DuplicateKey: naming the existing key.
    """
    if key.public_jwk is None:
        return
    mine = crypto.thumbprint(key.public_jwk)
    for other in ring.verifying(now):
        if (
            other.id != key.id
            and other.algo == key.algo
            and other.public_jwk is not None
            and crypto.thumbprint(other.public_jwk) == mine
        ):
            raise DuplicateKey(other.id)


def activate(ring: KeyRing, key: KeyRecord, now: float, grace: int) -> RingChange:
    """``key`` becomes the active signing key of its algo; the previous one retires."""
    _check_kid(ring, key)
    current = ring.active(key.algo)
    retired = (_retire(current, now, grace),) if current else ()
    activated = dataclasses.replace(key, status="active", activated_at=now)
    return RingChange(put=(*retired, activated))


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


def pending_next(ring: KeyRing, algo: Algo) -> KeyRecord | None:
    """The pre-published key that will sign ``algo`` next, if any."""
    return next((k for k in ring.keys if k.algo == algo and k.status == "next"), None)


def ready_next(ring: KeyRing, algo: Algo, now: float, lead: int) -> KeyRecord | None:
    """The next key of ``algo`` if it has been published for at least ``lead`` seconds.

    ``lead`` is the JWKS max-age plus a margin: by then every verifier that honours
    Cache-Control has fetched a JWKS holding the key, so signing with it breaks nobody.
    """
    key = pending_next(ring, algo)
    return key if key is not None and key.created_at + lead <= now else None


@dataclass(frozen=True)
class Rotation:
    """A rotation decision: the change to save, and whether the promotion must wait.

    ``retry_after`` is set (seconds) when the next key is not yet published long
    enough; ``change`` then only pre-publishes a next key, if there was none.
    """

    change: RingChange
    retry_after: int | None = None


def rotate(
    ring: KeyRing, algo: Algo, new_next: KeyRecord, now: float, grace: int, lead: int
) -> Rotation:
    """Promote the published next key of ``algo`` and pre-publish ``new_next`` after it.

    Without a next key, ``new_next`` is published now and the promotion waits ``lead``.
    """
    # Published now: the lead counts from the save, not from when the key was made.
    upcoming = dataclasses.replace(new_next, status="next", activated_at=None, created_at=now)
    current = pending_next(ring, algo)
    if current is None:
        _check_kid(ring, upcoming)
        return Rotation(RingChange(put=(upcoming,)), retry_after=lead)
    ready_at = current.created_at + lead
    if ready_at > now:
        return Rotation(RingChange(), retry_after=max(1, math.ceil(ready_at - now)))
    promoted = activate(ring, current, now, grace)
    _check_kid(applied(ring, promoted), upcoming)
    return Rotation(promoted + RingChange(put=(upcoming,)))


def rotation_due(
    ring: KeyRing, algo: Algo, now: float, interval: int, lead: int
) -> Literal["publish_next", "promote"] | None:
    """What scheduled rotation should do for ``algo`` at ``now``, if anything.

    Only generated, published signing keys rotate on schedule: a next key is
    published as soon as there is none (so it is ready long before it is due), and
    promoted once the active key has signed for ``interval`` and the next key has
    been published for ``lead``.

    HS256 never rotates on schedule: its verifiers hold the secret itself, and a
    secret made by a background loop would reach none of them.
    """
    if algo not in ASYMMETRIC_ALGOS:
        return None
    active = ring.active(algo)
    if active is None or active.public_jwk is None or active.sealed_secret is None:
        return None
    if pending_next(ring, algo) is None:
        return "publish_next"
    started = active.activated_at if active.activated_at is not None else active.created_at
    if started + interval <= now and ready_next(ring, algo, now, lead) is not None:
        return "promote"
    return None
