"""Registered clients, cached in process, so a token request costs no store round trip.

An entry is a client with its public keys already imported (a private_key_jwt
client's ``jwks``), loaded once per change. Entries are invalidated like key
rings (see :mod:`service.keys.watch`): a message on the store's change feed
drops the client it names at once, in every replica; and each entry remembers
the realm's client version it was read with, so a periodic version check (and
every resubscribe) drops whatever a lost message would have left behind.

While the store is away, cached clients keep authenticating (their secrets are
checked in memory); a client that changed is dropped, never served stale, and a
client not cached fails with ``Unavailable``. Private_key_jwt still needs the
store for its jti, so it fails closed there.

At most ``max_clients`` clients are kept, least recently used first out, and up
to ``max_absent`` unknown client ids, so that guessing ids costs the store one
read per id, not one per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from service import crypto, metrics
from service.models import Client
from service.storage import Change, Store

__all__ = ["ClientCache", "ClientKey", "PreparedClient", "prepare_client"]

log = logging.getLogger(__name__)

DEFAULT_MAX_CLIENTS: Final = 10_000
DEFAULT_MAX_ABSENT: Final = 1024

_Id = tuple[str, str]


@dataclass(frozen=True)
class ClientKey:
    """One of a client's public keys: its JWK and its imported handle."""

    jwk: Mapping[str, Any]
    handle: crypto.VerificationKey


@dataclass(frozen=True, eq=False)
class PreparedClient:
    """A client as its token requests need it: with its keys imported once."""

    client: Client
    keys: tuple[ClientKey, ...] = ()


def prepare_client(client: Client) -> PreparedClient:
    """Import the client's public keys (checked at registration, so none should fail)."""
    keys = []
    for jwk in client.jwks:
        try:
            keys.append(ClientKey(jwk, crypto.load_verification_key(jwk, kid=jwk.get("kid"))))
        except crypto.InvalidKey as exc:
            log.error("client %s has an unusable key: %s", client.client_id, exc.detail)
    return PreparedClient(client, tuple(keys))


class ClientCache:
    """Prepared clients by realm and client_id; single-flight loads.

    For each realm it tracks the client version it is in step with: set by the
    first load, and by every change message (which carries the new version). A
    load that read another version caches nothing (its message is on the way,
    or was lost, which the next version check finds).
    """

    def __init__(
        self,
        store: Store,
        *,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        max_absent: int = DEFAULT_MAX_ABSENT,
    ) -> None:
        self._store = store
        self._max = {True: max_clients, False: max_absent}
        #: Known clients and unknown ids with the client version each was read
        #: with, each least recently used first.
        self._entries: dict[bool, OrderedDict[_Id, tuple[PreparedClient | None, str]]] = {
            True: OrderedDict(),
            False: OrderedDict(),
        }
        self._loads: dict[_Id, asyncio.Future[PreparedClient | None]] = {}
        #: Per realm: the client version the entries are in step with.
        self._synced: dict[str, str] = {}
        # Bumped whenever something of the realm is dropped, so that a load under
        # way cannot store what it read before the change.
        self._generation: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._entries[True])

    async def get(self, realm: str, client_id: str) -> PreparedClient | None:
        """The client (loaded on a miss), or ``None`` if the realm has no such client.

        :raises Unavailable: not cached, and the store does not answer.
        """
        key = (realm, client_id)
        known = self._entries[True]
        entry = known.get(key)
        if entry is not None:
            known.move_to_end(key)
            return entry[0]
        if key in self._entries[False]:
            return None
        pending = self._loads.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(realm, client_id))
            self._loads[key] = pending
            pending.add_done_callback(lambda _f: self._loads.pop(key, None))
        return await asyncio.shield(pending)

    async def _load(self, realm: str, client_id: str) -> PreparedClient | None:
        generation = self._generation.get(realm, 0)
        loaded = await self._store.load_client(realm, client_id)
        prepared = prepare_client(loaded.client) if loaded.client is not None else None
        if self._generation.get(realm, 0) != generation:
            return prepared  # something changed meanwhile: use it once, keep nothing
        if self._synced.setdefault(realm, loaded.version) != loaded.version:
            return prepared
        entries = self._entries[prepared is not None]
        entries[(realm, client_id)] = (prepared, loaded.version)
        while len(entries) > self._max[prepared is not None]:
            entries.popitem(last=False)
        return prepared

    def drop(self, realm: str, client_id: str | None = None, *, cause: str = "message") -> None:
        """Forget one client of ``realm``, or with no ``client_id`` all of them.

        ``cause`` is why, for the metrics: a change message (``message``), or a
        version check that found the realm behind (``revalidation``).
        """
        loading = any(k[0] == realm for k in self._loads)
        if loading:
            self._generation[realm] = self._generation.get(realm, 0) + 1
        dropped = 0
        for entries in self._entries.values():
            if client_id is not None:
                dropped += entries.pop((realm, client_id), None) is not None
            else:
                for key in [k for k in entries if k[0] == realm]:
                    del entries[key]
                    dropped += 1
        if dropped:
            metrics.cache_invalidated("client", cause, dropped)
        if client_id is None:
            self._synced.pop(realm, None)
            if not loading:
                self._generation.pop(realm, None)

    def changed(self, change: Change) -> None:
        """A client change message (ring changes are not ours).

        It drops the client it names, unless that client is cached at the message's
        version (this process made the change, and reloaded). It moves the realm's
        version on if it follows from the one the cache is in step with; if not, a
        message in between was lost, and every client of the realm is dropped.
        """
        realm = change.realm
        if realm is None or not change.clients:
            return
        if change.client_id is None or change.version is None:
            self.drop(realm)
            return
        synced = self._synced.get(realm)
        if synced is not None and synced != change.version and synced != change.previous:
            log.info("client cache of realm %s missed a change; dropped", realm)
            self.drop(realm)
            return
        key = (realm, change.client_id)
        cached = self._entries[True].get(key) or self._entries[False].get(key)
        if cached is None or cached[1] != change.version:
            self.drop(realm, change.client_id)
        if synced is not None:
            self._synced[realm] = change.version

    async def revalidate(self) -> None:
        """Drop the clients of every realm whose client version is not the one this
        cache is in step with (a message was lost), and every remembered unknown id."""
        held = {realm for realm, _ in self._entries[True]} | {r for r, _ in self._entries[False]}
        for realm in [r for r in self._synced if r not in held]:
            del self._synced[realm]  # nothing cached: the next load sets it afresh
        synced = dict(self._synced)
        versions = await self._store.client_versions(list(synced))
        for (realm, expected), version in zip(synced.items(), versions, strict=True):
            if version != expected:
                log.info("client cache of realm %s was behind; dropped", realm)
                self.drop(realm, cause="revalidation")
        self._entries[False].clear()
