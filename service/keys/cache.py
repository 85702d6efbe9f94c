"""Each realm's key ring, prepared for requests and cached in process.

Serving the JWKS, signing and verifying must cost no store round trip, no key
import and no unsealing per request. So an entry is built once per change: the
ring is loaded, the JWKS is serialised with its ETag, and every live key is
opened and imported into a ``crypto`` handle (in a thread; a key that did not
change keeps the handle it had). An entry is outdated when the store's change
feed names the realm, when a version check finds it behind (after a
resubscribe, and periodically as a fallback), and when an expired key's grace
ends (a TTL prune publishes nothing, so each entry knows when it goes stale by
itself). An outdated entry is reloaded on the next request, but still served if
the store is down.

The cache holds at most ``max_realms`` rings, least recently used first out, and
remembers up to ``max_absent`` names that are not realms, so neither a large
number of realms nor requests for made-up ones make it grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from service import crypto, metrics
from service.clock import Clock
from service.errors import Unavailable
from service.keys._threads import prepare_pool
from service.keys.material import KeyMaterial
from service.models import Algo, KeyRecord, KeyRing
from service.storage import Change, Store

__all__ = ["JwksDocument", "PreparedRing", "RingCache", "Verifier", "prepare"]

log = logging.getLogger(__name__)

#: Published first: signing keys, then keys about to sign, uploaded keys, retiring keys.
_ORDER: Final = {"active": 0, "next": 1, "verify_only": 2, "expired": 3}
DEFAULT_MAX_REALMS: Final = 10_000
DEFAULT_MAX_ABSENT: Final = 1024


@dataclass(frozen=True)
class JwksDocument:
    """A realm's JWKS, serialised once: the body and its strong ETag."""

    body: bytes
    etag: str


@dataclass(frozen=True)
class Verifier:
    """A key that verifies tokens, with its handle, imported once."""

    key: KeyRecord
    handle: crypto.VerificationKey


@dataclass(frozen=True, eq=False)
class _Opened:
    key: KeyRecord
    signing: crypto.SigningKey | None
    verifier: Verifier | None
    pem: str | None


@dataclass(frozen=True, eq=False)
class PreparedRing:
    """A realm's ring and what requests need from it, built once per change."""

    ring: KeyRing
    jwks: JwksDocument
    #: The active key of each algorithm, ready to sign.
    signing: Mapping[Algo, crypto.SigningKey]
    #: Every key that verifies, by kid.
    verifiers: Mapping[str, Verifier]
    #: SubjectPublicKeyInfo PEM of each published key, by hex SHA-256 of its kid.
    pems: Mapping[str, str]
    #: When the first expired key's grace ends (the entry must be rebuilt then).
    stale_at: float
    _opened: Mapping[str, _Opened]


def build_jwks(keys: list[KeyRecord]) -> JwksDocument:
    """The public JWK of every asymmetric key in ``keys``, in publication order."""
    published = sorted(
        (k for k in keys if k.public_jwk is not None),
        key=lambda k: (_ORDER[k.status], -k.created_at, k.id),
    )
    body = json.dumps(
        {"keys": [dict(k.public_jwk or {}) for k in published]}, separators=(",", ":")
    ).encode()
    return JwksDocument(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def prepare(
    ring: KeyRing, material: KeyMaterial, now: float, previous: PreparedRing | None = None
) -> PreparedRing:
    """Everything requests need from ``ring`` at ``now``; keys unchanged since
    ``previous`` keep their handles. CPU-bound: run it in a thread.

    A key that cannot be opened or imported here (another KEK sealed it, say) is
    logged and left out of signing and verification; its public JWK is still published.
    """
    live = list(ring.verifying(now))
    opened = {key.id: _open(ring.realm.name, key, material, previous) for key in live}
    signing = {o.key.algo: o.signing for o in opened.values() if o.signing and o.key.signs}
    # Only live keys: a record whose grace has ended but that the store's TTL has
    # not pruned yet is already left out, and must not make the entry stale at once.
    grace_ends = [k.expires_at for k in live if k.expires_at is not None]
    return PreparedRing(
        ring=ring,
        jwks=build_jwks(live),
        signing=signing,
        verifiers={o.key.kid: o.verifier for o in opened.values() if o.verifier},
        pems={
            hashlib.sha256(o.key.kid.encode()).hexdigest(): o.pem for o in opened.values() if o.pem
        },
        stale_at=min(grace_ends, default=math.inf),
        _opened=opened,
    )


def _open(
    realm: str, key: KeyRecord, material: KeyMaterial, previous: PreparedRing | None
) -> _Opened:
    before = previous._opened.get(key.id) if previous is not None else None
    if before is not None and _same_material(before, key):
        verifier = Verifier(key, before.verifier.handle) if before.verifier else None
        return _Opened(key, before.signing, verifier, before.pem)
    try:
        signing = material.signing_key(realm, key) if key.sealed_secret is not None else None
        verifier = Verifier(key, material.verification_key(realm, key))
        pem = crypto.jwk_to_pem(key.public_jwk) if key.public_jwk is not None else None
    except crypto.CryptoError as exc:
        log.error("key %s of realm %s cannot be used here: %s", key.id, realm, exc.detail)
        return _Opened(key, None, None, None)
    return _Opened(key, signing, verifier, pem)


def _same_material(before: _Opened, key: KeyRecord) -> bool:
    a = before.key
    if (a.kid, a.algo, a.public_jwk) != (key.kid, key.algo, key.public_jwk):
        return False
    # A key id's material never changes: only a rekey gives a key a new ciphertext,
    # of the same secret. So a handle opened from the old ciphertext still serves,
    # and a rekey of 10,000 realms costs no replica an unseal and import per key. A
    # key that did not open before is opened again: the new ciphertext may (its KEK
    # may be the one this process has).
    return a.sealed_secret == key.sealed_secret or before.verifier is not None


class RingCache:
    """Single-flight loads of prepared rings, kept until invalidated, stale or evicted."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        material: KeyMaterial,
        *,
        max_realms: int = DEFAULT_MAX_REALMS,
        max_absent: int = DEFAULT_MAX_ABSENT,
    ) -> None:
        self._store = store
        self._clock = clock
        self._material = material
        self._max_realms = max_realms
        self._max_absent = max_absent
        self._entries: OrderedDict[str, PreparedRing] = OrderedDict()
        #: Names the store said are no realm, until a change names them.
        self._absent: OrderedDict[str, None] = OrderedDict()
        self._loads: dict[str, asyncio.Future[PreparedRing | None]] = {}
        # Bumped on every invalidation, so a load that started before a change
        # cannot put its now-outdated result back into the cache.
        self._generation: dict[str, int] = {}
        self._outdated: set[str] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def current(self, realm: str) -> PreparedRing | None:
        """The realm's prepared ring if it is cached and current, without waiting;
        else ``None`` (then :meth:`get` loads it)."""
        entry = self._entries.get(realm)
        if entry is not None and realm not in self._outdated and self._clock.now() < entry.stale_at:
            self._entries.move_to_end(realm)
            return entry
        return None

    async def rings(self) -> list[KeyRing]:
        """Every cached ring, those outdated or stale loaded again first (what the
        metrics report on; while the store is away, as they are)."""
        now = self._clock.now()
        for realm, entry in list(self._entries.items()):
            if realm in self._outdated or now >= entry.stale_at:
                with contextlib.suppress(Unavailable):
                    await self.get(realm)
        return [entry.ring for entry in self._entries.values()]

    def holds(self, realm: str) -> bool:
        """Whether a ring of ``realm`` is cached, current or not (what is served while
        the store is away)."""
        return realm in self._entries

    async def get(self, realm: str) -> PreparedRing | None:
        """The realm's prepared ring (loaded on a miss), or ``None`` if there is no realm."""
        entry = self.current(realm)
        if entry is not None:
            return entry
        entry = self._entries.get(realm)
        if entry is None and realm in self._absent:
            return None
        pending = self._loads.get(realm)
        if pending is None:
            pending = asyncio.ensure_future(self._load(realm, entry))
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

    async def _load(self, realm: str, previous: PreparedRing | None) -> PreparedRing | None:
        generation = self._generation.get(realm, 0)
        ring = await self._store.load_ring(realm)
        current = self._generation.get(realm, 0) == generation
        if ring is None:
            if current:
                self._drop(realm)
                self._remember_absent(realm)
            return None
        prepared = await asyncio.get_running_loop().run_in_executor(
            prepare_pool(), prepare, ring, self._material, self._clock.now(), previous
        )
        if self._generation.get(realm, 0) == generation:
            self._entries[realm] = prepared
            self._entries.move_to_end(realm)
            self._outdated.discard(realm)
            self._absent.pop(realm, None)
            while len(self._entries) > self._max_realms:
                self._drop(next(iter(self._entries)))
        return prepared

    def _drop(self, realm: str) -> None:
        self._entries.pop(realm, None)
        self._outdated.discard(realm)
        if realm not in self._loads:
            self._generation.pop(realm, None)

    def _remember_absent(self, realm: str) -> None:
        self._absent[realm] = None
        while len(self._absent) > self._max_absent:
            self._absent.popitem(last=False)

    def changed(self, change: Change) -> None:
        """A ring change message: forget that realm's ring, unless the cached ring is
        already that version (this process made the change). Client changes are not ours."""
        if change.realm is None or change.clients:
            return
        entry = self._entries.get(change.realm)
        if (
            entry is not None
            and change.version is not None
            and entry.ring.version == change.version
            and change.realm not in self._outdated
        ):
            return
        self.invalidate(change.realm, cause="message")

    def invalidate(self, realm: str, *, cause: str = "write") -> None:
        """Forget ``realm``: the next request loads it afresh.

        ``cause`` is why, for the metrics: this process wrote the ring (``write``), a
        change message named it (``message``), or a version check found it behind
        (``revalidation``).
        """
        self._absent.pop(realm, None)
        if realm in self._loads or realm in self._entries:
            # Only for realms held or loading, so this stays as small as the cache.
            self._generation[realm] = self._generation.get(realm, 0) + 1
        if realm in self._entries:
            if realm not in self._outdated:
                metrics.cache_invalidated("key_ring", cause)
            # Kept, but no longer served while the store answers (see ``get``).
            self._outdated.add(realm)

    async def revalidate(self) -> None:
        """Drop every entry whose ring version no longer matches the store's, and
        every remembered absence (a creation message may have been missed)."""
        realms = list(self._entries)
        versions = await self._store.ring_versions(realms)
        for realm, version in zip(realms, versions, strict=True):
            entry = self._entries.get(realm)
            if entry is not None and version != entry.ring.version:
                self.invalidate(realm, cause="revalidation")
        self._absent.clear()
