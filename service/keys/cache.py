"""Each realm's key ring and JWKS body, cached in process.

Serving the JWKS and signing tokens must not cost a store round trip per
request. An entry is built once per change: the ring is loaded, and the JWKS is
serialised with its ETag. An entry is outdated when the store's change feed
names the realm, when a version check finds it behind (after a resubscribe, and
periodically as a fallback), and when an expired key's grace ends (a TTL prune
publishes nothing, so each entry knows when it goes stale by itself). An outdated
entry is reloaded on the next request, but still served if the store is down.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
from dataclasses import dataclass

from service.clock import Clock
from service.errors import Unavailable
from service.models import KeyRing
from service.storage import Store

__all__ = ["JwksDocument", "RingCache"]

log = logging.getLogger(__name__)

#: Published first: signing keys, then keys about to sign, uploaded keys, retiring keys.
_ORDER = {"active": 0, "next": 1, "verify_only": 2, "expired": 3}


@dataclass(frozen=True)
class JwksDocument:
    """A realm's JWKS, serialised once: the body and its strong ETag."""

    body: bytes
    etag: str


@dataclass(frozen=True)
class _Entry:
    ring: KeyRing
    jwks: JwksDocument
    stale_at: float


def build_jwks(ring: KeyRing, now: float) -> JwksDocument:
    """The public JWK of every asymmetric key that still verifies at ``now``."""
    keys = sorted(
        (k for k in ring.verifying(now) if k.public_jwk is not None),
        key=lambda k: (_ORDER[k.status], -k.created_at, k.id),
    )
    body = json.dumps(
        {"keys": [dict(k.public_jwk or {}) for k in keys]}, separators=(",", ":")
    ).encode()
    return JwksDocument(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


class RingCache:
    """Single-flight loads of key rings, kept until invalidated or stale."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._loads: dict[str, asyncio.Future[_Entry | None]] = {}
        # Bumped on every invalidation, so a load that started before a change
        # cannot put its now-outdated result back into the cache.
        self._generation: dict[str, int] = {}
        self._outdated: set[str] = set()

    async def get(self, realm: str) -> _Entry | None:
        """The realm's entry (loaded on a miss), or ``None`` if there is no realm."""
        entry = self._entries.get(realm)
        if entry is not None and realm not in self._outdated and self._clock.now() < entry.stale_at:
            return entry
        pending = self._loads.get(realm)
        if pending is None:
            pending = asyncio.ensure_future(self._load(realm))
            self._loads[realm] = pending
            pending.add_done_callback(lambda _f: self._loads.pop(realm, None))
        try:
            return await asyncio.shield(pending)
        except Unavailable:
            # The store is down (a failover, say): the last ring we had beats no
            # JWKS and no signing at all. It is replaced as soon as a load succeeds.
            if entry is None:
                raise
            log.warning("serving the cached key ring of %s: the store is unavailable", realm)
            return entry

    async def _load(self, realm: str) -> _Entry | None:
        generation = self._generation.get(realm, 0)
        ring = await self._store.load_ring(realm)
        if ring is None:
            self._entries.pop(realm, None)
            self._outdated.discard(realm)
            return None
        now = self._clock.now()
        grace_ends = [k.expires_at for k in ring.keys if k.expires_at is not None]
        entry = _Entry(ring, build_jwks(ring, now), min(grace_ends, default=math.inf))
        if self._generation.get(realm, 0) == generation:
            self._entries[realm] = entry
            self._outdated.discard(realm)
        return entry

    def invalidate(self, realm: str) -> None:
        """Forget ``realm``: the next request loads it afresh."""
        self._generation[realm] = self._generation.get(realm, 0) + 1
        # Kept, but no longer served while the store answers (see ``get``).
        self._outdated.add(realm)

    async def revalidate(self) -> None:
        """Drop every entry whose ring version no longer matches the store's."""
        for realm, entry in list(self._entries.items()):
            if await self._store.ring_version(realm) != entry.ring.version:
                self.invalidate(realm)
