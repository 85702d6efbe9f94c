"""Admin API keys: random secrets, stored only as their SHA-256, global or per realm.

A realm-scoped key is bound to the realm's incarnation (``Realm.incarnation``),
not only its name: once the realm is deleted, the key is refused, even after a
new realm of that name is created.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Final

from service.audit import SYSTEM, Actor, log_events, new_event
from service.clock import Clock
from service.errors import Unauthorized
from service.keys.errors import RealmNotFound
from service.models import AdminKey
from service.ratelimit import RateLimiter, RateLimits
from service.storage import RealmGone, Store

__all__ = ["AdminKeys"]

log = logging.getLogger(__name__)

#: Prefix of every admin key, so a leaked one is easy to recognise (and to scan for).
PREFIX: Final = "jwa_"
BOOTSTRAP_ID: Final = "bootstrap"


def _digest(secret: str) -> str:
    # The secret has 256 bits of entropy: a fast hash is enough, no KDF needed.
    return hashlib.sha256(secret.encode()).hexdigest()


class AdminKeys:
    """Creates admin keys and authenticates bearer secrets."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        bootstrap: str | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._bootstrap_digest = _digest(bootstrap) if bootstrap else None
        self._limiter = limiter or RateLimiter(store, clock, RateLimits())

    async def create(
        self, realm: str | None = None, *, actor: Actor = SYSTEM
    ) -> tuple[AdminKey, str]:
        """A new admin key, global or for ``realm``; the secret is returned only here.

        ``admin_key.created`` (the key's id, never its secret) goes to the realm's
        event stream, or for a global key to the global one.

        :raises RealmNotFound: there is no realm ``realm``.
        """
        incarnation: str | None = None
        if realm is not None:
            found = await self._store.get_realm(realm)
            if found is None:
                raise RealmNotFound(realm)
            incarnation = found.incarnation
        secret = PREFIX + secrets.token_urlsafe(32)
        key = AdminKey(
            id="adm_" + secrets.token_urlsafe(12),
            realm=realm,
            created_at=self._clock.now(),
            incarnation=incarnation,
        )
        event = new_event(
            "admin_key.created", actor, realm, key.created_at, key.id, scope=realm or "global"
        )
        try:
            await self._store.put_admin_key(_digest(secret), key, events=[event])
        except RealmGone as exc:  # deleted since we looked
            raise RealmNotFound(str(realm)) from exc
        log_events([event])
        return key, secret

    async def authenticate(self, secret: str | None, *, address: str | None = None) -> AdminKey:
        """The admin key for a bearer secret, sent from ``address``.

        The request is counted against the key (by its digest) and a locked-out
        address refused before the key is looked up; a wrong key counts against the
        address (:class:`~service.ratelimit.RateLimiter`).

        :raises Unauthorized: missing or unknown.
        :raises RateLimited: over the key's rate limit, or the address is locked out.
        """
        if not secret:
            raise Unauthorized("an admin key is required: Authorization: Bearer <admin key>")
        digest = _digest(secret)
        await self._limiter.admit_admin(digest, address)
        try:
            return await self._find(digest)
        except Unauthorized:
            await self._limiter.admin_failed(address)
            raise

    async def _find(self, digest: str) -> AdminKey:
        if self._bootstrap_digest and hmac.compare_digest(digest, self._bootstrap_digest):
            return AdminKey(id=BOOTSTRAP_ID, realm=None, created_at=0.0)
        key = await self._store.get_admin_key(digest)
        if key is None:
            raise Unauthorized("the admin key is not valid")
        if key.realm is not None:
            # Read from the store, not a replica's ring cache: a cache that missed
            # the deletion would still hold the old incarnation, and let the key in.
            realm = await self._store.get_realm(key.realm)
            if realm is None or realm.incarnation != key.incarnation:
                log.info("admin key %s refused: realm %s was deleted", key.id, key.realm)
                raise Unauthorized("the admin key is not valid")
        return key
