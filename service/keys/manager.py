"""KeyManager: every change to a realm's keys, applied by compare-and-swap.

The shape of each change (dex's ``UpdateKeys``): generate key material first,
outside any transaction; load the ring; let ``policy`` decide; save only if the
ring has not moved. A writer that loses the race reloads and decides again, so
several processes on one store never leave two active keys for one algo. Each
decision returns what it decided along with the change (:class:`Decision`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from service import crypto, metrics
from service.audit import SCHEDULER, SYSTEM, Actor, AuditEvent, log_events, new_event
from service.clock import Clock
from service.keys import kek, policy
from service.keys.audit import ring_events
from service.keys.cache import DEFAULT_MAX_REALMS, JwksDocument, PreparedRing, RingCache
from service.keys.errors import (
    Busy,
    DefaultRealmProtected,
    KeyNotFound,
    RealmNameTaken,
    RealmNotFound,
    RotationTooSoon,
    TooManyRealms,
    UndeliveredSecret,
)
from service.keys.material import CreatedKey, KeyMaterial
from service.keys.requests import GenerateKey, KeySpec, UploadPublicKey
from service.models import DEFAULT_REALM, Algo, KeyRecord, KeyRing, Page, Realm
from service.storage import RealmExists, RealmGone, Store, StoreUnavailable

__all__ = ["CreatedKey", "Decision", "KeyManager"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_ATTEMPTS: Final = 64
#: Realms in one store. Each costs a few KiB in the store and, while served, in every
#: process's cache (JWKS_CACHE_REALMS bounds that).
MAX_REALMS: Final = 100_000
_ROTATE_HS256_LATER: Final = (
    "hs256 keys rotate only with immediate=true, which returns the new secret once: "
    "HS256 verifiers hold the secret, not the JWKS, so there is no next key to publish "
    "ahead of time"
)
_DELETE_ACTIVE_HS256: Final = (
    "this is the realm's active hs256 key, and a replacement would be a secret nobody "
    'receives: rotate first (POST .../jwt_keys/rotate {"algo": "hs256", "immediate": true} '
    "returns the new secret once), then delete this key"
)


@dataclass(frozen=True)
class Decision(Generic[T]):
    """What a decision on a ring wants saved, and what it decided (dex's updater
    returns both the same way)."""

    change: policy.RingChange
    outcome: T


@dataclass(frozen=True)
class _NeedsKey:
    """A signing key goes and no replacement of ``algo`` has been generated yet."""

    algo: Algo


class KeyManager:
    """Realms and key rings on a :class:`~service.storage.Store`."""

    def __init__(
        self,
        store: Store,
        sealer: crypto.Sealer,
        clock: Clock,
        *,
        grace: int,
        rsa_bits: int = 2048,
        publish_lead: int = 305,
        max_cached_realms: int = DEFAULT_MAX_REALMS,
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._clock = clock
        self._grace = grace
        self._lead = publish_lead
        self._material = KeyMaterial(sealer, rsa_bits)
        self._cache = RingCache(store, clock, self._material, max_realms=max_cached_realms)

    @property
    def cache(self) -> RingCache:
        """The in-process ring cache (the change watcher keeps it current)."""
        return self._cache

    # Start-up -------------------------------------------------------------

    async def check_kek(self) -> None:
        """Refuse to run without every KEK the store's secrets may be sealed under
        (see :func:`~service.keys.kek.check_keks`).

        :raises crypto.MissingKek: naming the KEK ids that JWKS_KEK lacks.
        :raises crypto.SealError: the KEK does not open the store's check value.
        """
        await kek.check_keks(self._store, self._sealer)

    async def rekey(
        self,
        *,
        progress: Callable[[kek.RekeyReport], None] | None = None,
        actor: Actor = SYSTEM,
    ) -> kek.RekeyReport:
        """Seal every stored secret again under the first KEK, realm by realm, each by
        compare-and-swap (see :func:`~service.keys.kek.rekey_store`). Keys do not change:
        the same kids sign and the JWKS stays the same.

        :raises crypto.MissingKek: a secret is sealed under a KEK that JWKS_KEK lacks.
        """
        return await kek.rekey_store(
            self._store, self._sealer, lambda realm: self._reseal(realm, actor), progress
        )

    async def ensure_default_realm(self) -> None:
        """Create the ``default`` realm unless it exists."""
        if await self._store.load_ring(DEFAULT_REALM) is None:
            with contextlib.suppress(RealmNameTaken):  # another replica was first
                await self.create_realm(DEFAULT_REALM)

    # Realms ---------------------------------------------------------------

    async def create_realm(self, name: str, *, actor: Actor = SYSTEM) -> Realm:
        """Create a realm with its first RS256 signing key.

        ``realm.created`` and the key's ``key.created`` are written with the realm;
        ``realm.created`` is copied to the global stream right after.

        :raises TooManyRealms: the store holds ``MAX_REALMS`` (checked before the
            write: concurrent creations may pass it by a few).
        """
        if await self._store.count_realms() >= MAX_REALMS:
            raise TooManyRealms(f"the store holds {MAX_REALMS} realms, the most it may")
        now = self._clock.now()
        # A new incarnation, never one before it: admin keys of a deleted realm of
        # this name stay refused.
        realm = Realm(name=name, created_at=now, incarnation=secrets.token_urlsafe(16))
        key = await self._material.create(name, GenerateKey("rs256"), now)
        first = dataclasses.replace(key.key, status="active")
        created = new_event("realm.created", actor, name, now)
        change = policy.RingChange(put=(first,))
        events = (created, *ring_events(KeyRing(realm, ""), change, actor, now))
        try:
            await self._store.create_realm(realm, [first], now, events=events)
        except RealmExists as exc:
            raise RealmNameTaken(name) from exc
        log_events(events)
        await self._copy_to_global(created)
        self._cache.invalidate(name)  # it may be remembered as absent
        log.info("realm created: %s", name)
        return realm

    async def realm(self, name: str) -> Realm:
        """The realm, from the cache.

        :raises RealmNotFound:
        """
        return (await self.ring(name)).realm

    async def configure_realm(
        self, name: str, *, rotation_interval: int | None, actor: Actor = SYSTEM
    ) -> Realm:
        """Set (or, with ``None``, clear) the realm's own rotation interval.

        :raises RealmNotFound:
        """
        realm = dataclasses.replace(await self.realm(name), rotation_interval=rotation_interval)
        event = new_event(
            "realm.updated", actor, name, self._clock.now(), rotation_interval=rotation_interval
        )
        try:
            await self._store.update_realm(realm, events=[event])
        except RealmGone as exc:
            raise RealmNotFound(name) from exc
        log_events([event])
        self._cache.invalidate(name)
        return realm

    async def list_realms(self, limit: int, cursor: str | None) -> Page[Realm]:
        """Realms by name."""
        return await self._store.list_realms(limit, cursor)

    async def delete_realm(self, name: str, *, actor: Actor = SYSTEM) -> None:
        """Delete a realm with all its keys, clients and realm-scoped admin keys.

        Its event stream goes with it; ``realm.deleted`` is written to the global
        stream, right after (another slot).

        :raises DefaultRealmProtected: ``name`` is the default realm.
        :raises RealmNotFound:
        """
        if name == DEFAULT_REALM:
            # Its URLs are the service's own (no /realms/ prefix), and it is made
            # only at start: deleted, they would answer 404 until a restart.
            raise DefaultRealmProtected()
        if not await self._store.delete_realm(name):
            raise RealmNotFound(name)
        self._cache.invalidate(name)
        deleted = new_event("realm.deleted", actor, name, self._clock.now())
        log_events([deleted])
        await self._copy_to_global(deleted)
        log.info("realm deleted: %s", name)

    # Keys -----------------------------------------------------------------

    async def prepared(self, realm: str) -> PreparedRing:
        """The realm's ring with its JWKS and key handles, from the in-process cache.

        :raises RealmNotFound:
        """
        entry = self._cache.current(realm) or await self._cache.get(realm)
        if entry is None:
            raise RealmNotFound(realm)
        return entry

    async def ring(self, realm: str) -> KeyRing:
        """The realm's key ring, from the in-process cache.

        :raises RealmNotFound:
        """
        return (await self.prepared(realm)).ring

    async def jwks(self, realm: str) -> JwksDocument:
        """The realm's pre-serialised JWKS.

        :raises RealmNotFound:
        """
        return (await self.prepared(realm)).jwks

    async def create_key(self, realm: str, spec: KeySpec, *, actor: Actor = SYSTEM) -> CreatedKey:
        """Generate, import or upload a key (see :mod:`service.keys.requests`).

        :raises RealmNotFound:
        :raises KidInUse:
        :raises DuplicateKey: the uploaded public key is already a live key of the realm.
        :raises InvalidInput: an uploaded key is malformed, private or too weak.
        """
        await self.ring(realm)  # fail fast, before generating anything
        now = self._clock.now()
        created = await self._material.create(realm, spec, now)
        key = created.key

        def decide(ring: KeyRing) -> Decision[None]:
            policy.check_room(ring)
            if isinstance(spec, UploadPublicKey):
                policy.check_not_duplicate(ring, key, now)
                return _apply(policy.add_verify_only(ring, key))
            return _apply(policy.activate(ring, key, now, self._grace))

        await self._update(realm, decide, actor)
        log.info("key created: realm=%s id=%s algo=%s", realm, key.id, key.algo)
        return dataclasses.replace(created, key=(await self._stored(realm, key.id)))

    async def list_keys(self, realm: str, limit: int, cursor: str | None) -> Page[KeyRecord]:
        """Keys newest first.

        :raises RealmNotFound:
        """
        page = await self._store.page_keys(realm, limit, cursor)
        if page is None:
            raise RealmNotFound(realm)
        return page

    async def get_key(self, realm: str, key_id: str) -> KeyRecord:
        """One key.

        :raises RealmNotFound:
        :raises KeyNotFound:
        """
        key = await self._store.get_key(realm, key_id)
        if key is not None:
            return key
        # Not the whole ring: a realm may hold far more keys than a request should load.
        if await self._store.ring_version(realm) is None:
            raise RealmNotFound(realm)
        raise KeyNotFound(key_id)

    async def delete_key(
        self, realm: str, key_id: str, *, force: bool = False, actor: Actor = SYSTEM
    ) -> KeyRecord:
        """Retire a key (or delete it at once with ``force``); never leave an algo unsigned.

        If the key signs, a replacement is generated and activated in the same
        compare-and-swap, so there is an active key before this returns. Not for
        the active HS256 key: its replacement would be a secret nobody receives, so
        it must be rotated first (:meth:`rotate_key`, which returns the new secret).

        :returns: the key as it is after the change.
        :raises RealmNotFound:
        :raises KeyNotFound:
        :raises UndeliveredSecret: the key is the active HS256 key.
        """
        replacement: KeyRecord | None = None

        def decide(ring: KeyRing) -> Decision[KeyRecord | _NeedsKey]:
            now = self._clock.now()
            change = policy.remove(ring, key_id, now, self._grace, force=force)
            algo = policy.needs_replacement(ring, key_id)
            if algo == "hs256":
                raise UndeliveredSecret(_DELETE_ACTIVE_HS256)
            if algo is not None:
                # A next key published long enough takes over; else a fresh key.
                successor = policy.ready_next(ring, algo, now, self._lead) or replacement
                if successor is None or successor.algo != algo:
                    return Decision(policy.RingChange(), _NeedsKey(algo))
                change += policy.activate(policy.applied(ring, change), successor, now, self._grace)
            touched = {k.id: k for k in change.put + change.delete}
            # policy.remove raised KeyNotFound unless the ring has the key.
            return Decision(change, touched.get(key_id) or ring.by_id(key_id) or _never())

        while True:
            outcome = await self._update(realm, decide, actor)
            if not isinstance(outcome, _NeedsKey):
                break
            # Generated outside the CAS, and reused if the CAS is retried.
            new = await self._material.create(realm, GenerateKey(outcome.algo), self._clock.now())
            replacement = new.key
        log.info("key %s: realm=%s id=%s", "deleted" if force else "expired", realm, key_id)
        if force:
            return dataclasses.replace(outcome, status="expired", expires_at=self._clock.now())
        return await self._stored(realm, key_id)

    async def rotate(
        self, realm: str, algo: Algo, *, immediate: bool = False, actor: Actor = SYSTEM
    ) -> KeyRecord:
        """:meth:`rotate_key` for an asymmetric algo: the key that signs now.

        :raises UndeliveredSecret: ``algo`` is hs256, whose new secret this would drop.
        """
        if algo == "hs256":
            raise UndeliveredSecret("rotate hs256 with rotate_key, which returns the new secret")
        return (await self.rotate_key(realm, algo, immediate=immediate, actor=actor)).key

    async def rotate_key(
        self, realm: str, algo: Algo, *, immediate: bool = False, actor: Actor = SYSTEM
    ) -> CreatedKey:
        """Rotate ``algo``'s signing key; return the key that signs now.

        Normally the pre-published next key is promoted and a new next key is
        published behind it. If the next key has not been published for the JWKS
        max-age plus a margin (or there is none, in which case one is published
        now), nothing is promoted and ``RotationTooSoon`` says how long to wait.
        ``immediate`` activates a brand-new key at once: verifiers holding a cached
        JWKS fail on its tokens until they refetch.

        HS256 rotates only with ``immediate``, and the new secret is returned (the
        only time it is shown, as on creation): its verifiers hold the secret, not
        a JWKS, so a next key published ahead would be one nobody can verify with.

        :raises RealmNotFound:
        :raises RotationTooSoon:
        :raises UndeliveredSecret: hs256 without ``immediate``.
        """
        if algo == "hs256" and not immediate:
            raise UndeliveredSecret(_ROTATE_HS256_LATER)
        created = await self._material.create(realm, GenerateKey(algo), self._clock.now())
        new = created.key
        if immediate:
            await self._update(
                realm,
                lambda ring: _apply(policy.activate(ring, new, self._clock.now(), self._grace)),
                actor,
                rotated=new.id,
            )
            log.warning("immediate rotation: realm=%s algo=%s id=%s", realm, algo, new.id)
            metrics.key_rotated(realm, algo, "immediate")
            return dataclasses.replace(created, key=await self._stored(realm, new.id))

        def decide(ring: KeyRing) -> Decision[int | None]:
            rotation = policy.rotate(ring, algo, new, self._clock.now(), self._grace, self._lead)
            return Decision(rotation.change, rotation.retry_after)

        retry_after = await self._update(realm, decide, actor)
        if retry_after is not None:
            raise RotationTooSoon(retry_after)
        ring = await self._store.load_ring(realm)
        active = ring.active(algo) if ring is not None else None
        if active is None:  # pragma: no cover - the CAS just made one active
            raise RealmNotFound(realm)
        log.info("key rotated: realm=%s algo=%s active=%s", realm, algo, active.id)
        metrics.key_rotated(realm, algo, "manual")
        return CreatedKey(active)

    async def rotate_if_due(
        self, realm: str, algo: Algo, interval: int, *, actor: Actor = SCHEDULER
    ) -> bool:
        """Scheduled rotation of one realm and algo: publish a next key, or promote it.

        Decided on the ring as stored first (cheap, usually nothing to do; the
        scheduler passes over every realm, so this does not fill the cache), then
        again inside the compare-and-swap: of several replicas racing, one changes
        the ring and the others find nothing due.

        :returns: whether this call changed the ring.
        :raises RealmNotFound:
        """
        ring = await self._store.load_ring(realm)
        if ring is None:
            raise RealmNotFound(realm)
        if policy.rotation_due(ring, algo, self._clock.now(), interval, self._lead) is None:
            return False
        new = (await self._material.create(realm, GenerateKey(algo), self._clock.now())).key

        def decide(current: KeyRing) -> Decision[str | None]:
            now = self._clock.now()
            step = policy.rotation_due(current, algo, now, interval, self._lead)
            if step is None:
                return Decision(policy.RingChange(), None)
            change = policy.rotate(current, algo, new, now, self._grace, self._lead).change
            return Decision(change, step if change.put or change.delete else None)

        step = await self._update(realm, decide, actor)
        if step is None:
            return False
        log.info("scheduled rotation step: realm=%s algo=%s (%s)", realm, algo, step)
        if step == "promote":  # publishing a next key is not a rotation yet
            metrics.key_rotated(realm, algo, "scheduled")
        return True

    # Internals ------------------------------------------------------------

    async def _reseal(self, realm: str, actor: Actor) -> tuple[int, int]:
        """Seal the realm's secrets that are under an older KEK again under the first, in
        one compare-and-swap: (how many were sealed again, how many already were)."""

        def decide(ring: KeyRing) -> Decision[tuple[int, int]]:
            sealed = [k for k in ring.keys if k.sealed_secret is not None]
            stale = tuple(k for k in sealed if self._material.needs_reseal(k))
            put = tuple(self._material.resealed(realm, k) for k in stale)
            return Decision(policy.RingChange(put=put), (len(put), len(sealed) - len(put)))

        return await self._update(realm, decide, actor)

    async def _stored(self, realm: str, key_id: str) -> KeyRecord:
        key = await self._store.get_key(realm, key_id)
        if key is None:
            raise KeyNotFound(key_id)
        return key

    async def _update(
        self,
        realm: str,
        decide: Callable[[KeyRing], Decision[T]],
        actor: Actor,
        *,
        rotated: str | None = None,
    ) -> T:
        """Load, decide, compare-and-swap; on a lost race, again. Returns the outcome
        of the decision that was saved (or that wanted no change).

        The change's audit events (:func:`~service.keys.audit.ring_events`; ``rotated``
        names a new key that rotates in) are saved by the same compare-and-swap.
        """
        for attempt in range(_MAX_ATTEMPTS):
            ring = await self._store.load_ring(realm)
            if ring is None:
                raise RealmNotFound(realm)
            decision = decide(ring)
            change = decision.change
            if not change.put and not change.delete:
                return decision.outcome
            now = self._clock.now()
            events = ring_events(ring, change, actor, now, rotated=rotated)
            try:
                saved = await self._store.save_ring(
                    ring, change.put, change.delete, now, events=events
                )
            except RealmGone as exc:
                raise RealmNotFound(realm) from exc
            if saved:
                self._cache.invalidate(realm)
                log_events(events)
                return decision.outcome
            # Lost the race: jittered back-off so racing writers spread out.
            await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
        raise Busy("too many concurrent changes to this realm; retry")

    async def _copy_to_global(self, event: AuditEvent) -> None:
        # The realm's change is made, and the event is in the log: an outage now
        # must not turn the request into a failure that a retry would repeat.
        try:
            await self._store.append_global_events([event])
        except StoreUnavailable:
            log.warning("%s %s not copied to the global event stream", event.type, event.id)


def _never() -> KeyRecord:  # pragma: no cover - for the type checker
    raise AssertionError("unreachable")


def _apply(change: policy.RingChange) -> Decision[None]:
    """A decision that only changes the ring."""
    return Decision(change, None)
