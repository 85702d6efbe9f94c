"""Audit events of key rings, and reading a realm's (or the global) event stream.

:func:`ring_events` says what a ring change means, from the ring as loaded and
the change the manager saves with it: a pure function, so a compare-and-swap
that is retried gets the events of the change it finally saved, written by the
same script.
"""

from __future__ import annotations

from service.audit import Actor, AuditEvent, Detail, EventType, new_event
from service.keys.errors import RealmNotFound
from service.keys.policy import RingChange
from service.models import KeyRecord, KeyRing, Page
from service.storage import Store

__all__ = ["AuditLog", "ring_events"]


def ring_events(
    ring: KeyRing, change: RingChange, actor: Actor, now: float, *, rotated: str | None = None
) -> tuple[AuditEvent, ...]:
    """The events of saving ``change`` over ``ring``, one per key it touches.

    A new key is ``key.created`` (``key.uploaded`` for a public key); a key that
    starts signing in place of another is ``key.rotated`` (so is the new key
    ``rotated`` names, for an immediate rotation); a key that stops signing or
    verifying for good is ``key.expired``, and one removed ``key.deleted``.
    """
    before = {k.id: k for k in ring.keys}
    events: list[AuditEvent] = []

    def add(type_: EventType, key: KeyRecord, **details: Detail) -> None:
        events.append(
            new_event(
                type_,
                actor,
                ring.realm.name,
                now,
                key.id,
                kid=key.kid,
                algo=key.algo,
                status=key.status,
                **details,
            )
        )

    for key in change.put:
        old = before.get(key.id)
        # Signing in place of another: a next key promoted, or an immediate rotation's key.
        started = key.id == rotated if old is None else not old.signs
        if key.signs and started:
            previous = ring.active(key.algo)
            add("key.rotated", key, previous=previous.id if previous else None)
        elif old is None:
            add("key.uploaded" if key.status == "verify_only" else "key.created", key)
        elif key.expired and not old.expired:
            add("key.expired", key)
    for key in change.delete:
        add("key.deleted", key)
    return tuple(events)


class AuditLog:
    """Reads the audit event streams (the stores' writers append to them)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def page(self, realm: str, limit: int, cursor: str | None) -> Page[AuditEvent]:
        """The realm's events newest first.

        :raises RealmNotFound:
        :raises InvalidInput: a cursor this API did not return.
        """
        page = await self._store.page_events(realm, limit, cursor)
        if page is None:
            raise RealmNotFound(realm)
        return page

    async def page_global(self, limit: int, cursor: str | None) -> Page[AuditEvent]:
        """The global stream's events newest first: realms created and deleted, admin
        keys for every realm."""
        page = await self._store.page_events(None, limit, cursor)
        return page or Page((), None)
