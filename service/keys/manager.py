"""KeyManager: every change to a realm's keys, applied by compare-and-swap.

The shape of each change (dex's ``UpdateKeys``): generate key material first,
outside any transaction; load the ring; let ``policy`` decide; save only if the
ring has not moved. A writer that loses the race reloads and decides again, so
several processes on one store never leave two active keys for one algo.
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
from typing import Final

from service import crypto
from service.clock import Clock
from service.errors import InvalidInput, Unavailable
from service.keys import policy
from service.keys.cache import JwksDocument, RingCache
from service.keys.errors import (
    Busy,
    KeyNotFound,
    RealmNameTaken,
    RealmNotFound,
    RotationTooSoon,
)
from service.keys.requests import GenerateKey, ImportSecret, KeySpec, UploadPublicKey
from service.models import Algo, KeyRecord, KeyRing, Page, Realm
from service.storage import CHANGES_ALL, RealmExists, RealmGone, Store

__all__ = ["CreatedKey", "KeyManager"]

log = logging.getLogger(__name__)

_MAX_ATTEMPTS: Final = 64
#: How often cached rings are version-checked even if no change message arrived.
REVALIDATE_INTERVAL: Final = 10.0
DEFAULT_REALM: Final = "default"
_KEK_CHECK_PLAINTEXT: Final = b"jwks-service key-encryption key check"
_KEK_CHECK_AAD: Final = b"kek-check"


@dataclass(frozen=True)
class CreatedKey:
    """A new key; ``secret`` is the HS256 secret, shown to the caller this once."""

    key: KeyRecord
    secret: str | None = None


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
    ) -> None:
        self._store = store
        self._sealer = sealer
        self._clock = clock
        self._grace = grace
        self._rsa_bits = rsa_bits
        self._lead = publish_lead
        self._cache = RingCache(store, clock)

    # Start-up -------------------------------------------------------------

    async def check_kek(self) -> None:
        """Refuse to run with a KEK other than the one that sealed the store's data.

        :raises crypto.SealError: the KEK does not open the store's check value.
        """
        check = self._sealer.seal(_KEK_CHECK_PLAINTEXT, _KEK_CHECK_AAD)
        stored = await self._store.kek_check(check)
        try:
            self._sealer.open(stored, _KEK_CHECK_AAD)
        except crypto.SealError as exc:
            raise crypto.SealError(
                "JWKS_KEK does not match the key this store's secrets were sealed with"
            ) from exc

    async def ensure_default_realm(self) -> None:
        """Create the ``default`` realm unless it exists."""
        if await self._store.load_ring(DEFAULT_REALM) is None:
            with contextlib.suppress(RealmNameTaken):  # another replica was first
                await self.create_realm(DEFAULT_REALM)

    # Realms ---------------------------------------------------------------

    async def create_realm(self, name: str) -> Realm:
        """Create a realm with its first RS256 signing key."""
        now = self._clock.now()
        realm = Realm(name=name, created_at=now)
        key = await self._new_key(name, GenerateKey("rs256"), now)
        try:
            await self._store.create_realm(
                realm, [dataclasses.replace(key.key, status="active")], now
            )
        except RealmExists as exc:
            raise RealmNameTaken(name) from exc
        log.info("realm created: %s", name)
        return realm

    async def realm(self, name: str) -> Realm:
        """The realm, from the cache.

        :raises RealmNotFound:
        """
        return (await self.ring(name)).realm

    async def configure_realm(self, name: str, *, rotation_interval: int | None) -> Realm:
        """Set (or, with ``None``, clear) the realm's own rotation interval.

        :raises RealmNotFound:
        """
        realm = dataclasses.replace(await self.realm(name), rotation_interval=rotation_interval)
        try:
            await self._store.update_realm(realm)
        except RealmGone as exc:
            raise RealmNotFound(name) from exc
        self._cache.invalidate(name)
        return realm

    async def list_realms(self, limit: int, cursor: str | None) -> Page[Realm]:
        """Realms by name."""
        return await self._store.list_realms(limit, cursor)

    async def delete_realm(self, name: str) -> None:
        """Delete a realm with all its keys.

        :raises RealmNotFound:
        """
        if not await self._store.delete_realm(name):
            raise RealmNotFound(name)
        self._cache.invalidate(name)
        log.info("realm deleted: %s", name)

    # Keys -----------------------------------------------------------------

    async def ring(self, realm: str) -> KeyRing:
        """The realm's key ring, from the in-process cache.

        :raises RealmNotFound:
        """
        entry = await self._cache.get(realm)
        if entry is None:
            raise RealmNotFound(realm)
        return entry.ring

    async def jwks(self, realm: str) -> JwksDocument:
        """The realm's pre-serialised JWKS.

        :raises RealmNotFound:
        """
        entry = await self._cache.get(realm)
        if entry is None:
            raise RealmNotFound(realm)
        return entry.jwks

    async def create_key(self, realm: str, spec: KeySpec) -> CreatedKey:
        """Generate, import or upload a key (see :mod:`service.keys.requests`).

        :raises RealmNotFound:
        :raises KidInUse:
        :raises InvalidInput: an uploaded key is malformed, private or too weak.
        """
        await self.ring(realm)  # fail fast, before generating anything
        now = self._clock.now()
        created = await self._new_key(realm, spec, now)
        key = created.key
        if isinstance(spec, UploadPublicKey):
            await self._update(realm, lambda ring: policy.add_verify_only(ring, key))
        else:
            await self._update(realm, lambda ring: policy.activate(ring, key, now, self._grace))
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
        await self.ring(realm)
        return await self._stored(realm, key_id)

    async def delete_key(self, realm: str, key_id: str, *, force: bool = False) -> KeyRecord:
        """Retire a key (or delete it at once with ``force``); never leave an algo unsigned.

        If the key signs, a replacement is generated and activated in the same
        compare-and-swap, so there is an active key before this returns.

        :returns: the key as it is after the change.
        :raises RealmNotFound:
        :raises KeyNotFound:
        """
        replacement: KeyRecord | None = None
        removed: list[KeyRecord] = []

        def decide(ring: KeyRing) -> policy.RingChange:
            now = self._clock.now()
            change = policy.remove(ring, key_id, now, self._grace, force=force)
            algo = policy.needs_replacement(ring, key_id)
            if algo is not None:
                # A next key published long enough takes over; else a fresh key.
                successor = policy.ready_next(ring, algo, now, self._lead) or replacement
                if successor is None or successor.algo != algo:
                    raise _ReplacementNeeded(algo)
                change += policy.activate(policy.applied(ring, change), successor, now, self._grace)
            removed[:] = [k for k in change.put + change.delete if k.id == key_id]
            return change

        while True:
            try:
                await self._update(realm, decide)
                break
            except _ReplacementNeeded as need:
                # Generated outside the CAS, and reused if the CAS is retried.
                new = await self._new_key(realm, GenerateKey(need.algo), self._clock.now())
                replacement = new.key
        log.info("key %s: realm=%s id=%s", "deleted" if force else "expired", realm, key_id)
        if force:
            return dataclasses.replace(removed[0], status="expired", expires_at=self._clock.now())
        return await self._stored(realm, key_id)

    async def rotate(self, realm: str, algo: Algo, *, immediate: bool = False) -> KeyRecord:
        """Rotate ``algo``'s signing key; return the key that signs now.

        Normally the pre-published next key is promoted and a new next key is
        published behind it. If the next key has not been published for the JWKS
        max-age plus a margin (or there is none, in which case one is published
        now), nothing is promoted and ``RotationTooSoon`` says how long to wait.
        ``immediate`` activates a brand-new key at once: verifiers holding a cached
        JWKS fail on its tokens until they refetch.

        :raises RealmNotFound:
        :raises RotationTooSoon:
        """
        new = (await self._new_key(realm, GenerateKey(algo), self._clock.now())).key
        if immediate:
            await self._update(
                realm, lambda ring: policy.activate(ring, new, self._clock.now(), self._grace)
            )
            log.warning("immediate rotation: realm=%s algo=%s id=%s", realm, algo, new.id)
            return await self._stored(realm, new.id)
        wait: list[int] = []

        def decide(ring: KeyRing) -> policy.RingChange:
            rotation = policy.rotate(ring, algo, new, self._clock.now(), self._grace, self._lead)
            wait[:] = [rotation.retry_after] if rotation.retry_after is not None else []
            return rotation.change

        await self._update(realm, decide)
        if wait:
            raise RotationTooSoon(wait[0])
        ring = await self._store.load_ring(realm)
        active = ring.active(algo) if ring is not None else None
        if active is None:  # pragma: no cover - the CAS just made one active
            raise RealmNotFound(realm)
        log.info("key rotated: realm=%s algo=%s active=%s", realm, algo, active.id)
        return active

    async def rotate_if_due(self, realm: str, algo: Algo, interval: int) -> bool:
        """Scheduled rotation of one realm and algo: publish a next key, or promote it.

        Decided on the cached ring first (cheap, usually nothing to do), then again
        inside the compare-and-swap: of several replicas racing, one changes the
        ring and the others find nothing due.

        :returns: whether this call changed the ring.
        """
        ring = await self.ring(realm)
        if policy.rotation_due(ring, algo, self._clock.now(), interval, self._lead) is None:
            return False
        new = (await self._new_key(realm, GenerateKey(algo), self._clock.now())).key
        changed: list[bool] = []

        def decide(current: KeyRing) -> policy.RingChange:
            now = self._clock.now()
            due = policy.rotation_due(current, algo, now, interval, self._lead)
            change = (
                policy.rotate(current, algo, new, now, self._grace, self._lead).change
                if due is not None
                else policy.RingChange()
            )
            changed[:] = [bool(change.put or change.delete)]
            return change

        await self._update(realm, decide)
        if changed and changed[0]:
            log.info("scheduled rotation step: realm=%s algo=%s", realm, algo)
            return True
        return False

    # Change feed ----------------------------------------------------------

    async def watch(self) -> None:
        """Keep the cache current from the store's change feed; runs until cancelled."""

        async def poll() -> None:
            while True:
                # A replica that missed a message must catch up well within the lead,
                # or it could serve a JWKS without a key that already signs.
                await asyncio.sleep(min(REVALIDATE_INTERVAL, self._lead / 2))
                try:
                    await self._cache.revalidate()
                except Exception:
                    log.warning("key ring revalidation failed", exc_info=True)

        poller = asyncio.ensure_future(poll())
        try:
            async for realm in self._store.changes():
                if realm != CHANGES_ALL:
                    self._cache.invalidate(realm)
                    continue
                try:
                    await self._cache.revalidate()
                except Unavailable:
                    # Keep serving what we have (verifiers need the JWKS most while
                    # the store is down); the periodic check catches up.
                    log.warning("key ring revalidation failed; retrying in the background")
        finally:
            poller.cancel()

    # Internals ------------------------------------------------------------

    async def _stored(self, realm: str, key_id: str) -> KeyRecord:
        key = await self._store.get_key(realm, key_id)
        if key is None:
            raise KeyNotFound(key_id)
        return key

    async def _update(self, realm: str, decide: Callable[[KeyRing], policy.RingChange]) -> None:
        """Load, decide, compare-and-swap; on a lost race, again."""
        for attempt in range(_MAX_ATTEMPTS):
            ring = await self._store.load_ring(realm)
            if ring is None:
                raise RealmNotFound(realm)
            change = decide(ring)
            if not change.put and not change.delete:
                return
            try:
                saved = await self._store.save_ring(
                    ring, change.put, change.delete, self._clock.now()
                )
            except RealmGone as exc:
                raise RealmNotFound(realm) from exc
            if saved:
                self._cache.invalidate(realm)
                return
            # Lost the race: jittered back-off so racing writers spread out.
            await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
        raise Busy("too many concurrent changes to this realm; retry")

    async def _new_key(self, realm: str, spec: KeySpec, now: float) -> CreatedKey:
        key_id = "jky_" + secrets.token_urlsafe(16)
        aad = f"{realm}/{key_id}".encode()
        if isinstance(spec, UploadPublicKey):
            try:
                info = crypto.parse_public_key(spec.public_key, spec.algo)
            except crypto.InvalidKey as exc:
                raise InvalidInput(f"public_key {exc.detail}", field="public_key") from exc
            kid = spec.kid or key_id
            record = KeyRecord(
                id=key_id,
                kid=kid,
                algo=info.algo,
                status="verify_only",
                created_at=now,
                name=spec.name,
                public_jwk=crypto.public_jwk(info.jwk, kid=kid, algo=info.algo),
                expected_issuer=spec.expected_issuer,
                expected_audience=spec.expected_audience,
            )
            return CreatedKey(record)
        if isinstance(spec, ImportSecret):
            kid = spec.kid or key_id
            sealed = self._sealer.seal(spec.secret.encode(), aad)
            record = KeyRecord(
                id=key_id,
                kid=kid,
                algo="hs256",
                status="active",
                created_at=now,
                name=spec.name,
                sealed_secret=sealed,
            )
            return CreatedKey(record, spec.secret)
        # RSA generation takes long enough to stall the event loop: use a thread.
        generated = await asyncio.to_thread(crypto.generate_key, spec.algo, self._rsa_bits)
        record = KeyRecord(
            id=key_id,
            kid=key_id,
            algo=spec.algo,
            status="active",
            created_at=now,
            name=spec.name,
            public_jwk=(
                crypto.public_jwk(generated.public_jwk, kid=key_id, algo=spec.algo)
                if generated.public_jwk is not None
                else None
            ),
            sealed_secret=self._sealer.seal(generated.secret.encode(), aad),
        )
        return CreatedKey(record, generated.secret if spec.algo == "hs256" else None)


class _ReplacementNeeded(Exception):
    """Raised inside a decision: a signing key goes and no replacement was generated yet."""

    def __init__(self, algo: Algo) -> None:
        super().__init__(algo)
        self.algo = algo
