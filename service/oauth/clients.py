"""Registered clients of each realm: register, find, list, delete, replace keys.

Token requests find clients through the in-process :class:`ClientCache`; the admin
API reads and writes the store itself, so it always sees what is stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Final

from service import crypto
from service.audit import SYSTEM, Actor, AuditEvent, log_events, new_event
from service.clock import Clock
from service.errors import Conflict, NotFound
from service.keys import RealmNotFound
from service.models import Client, Page
from service.oauth.client_cache import ClientCache, PreparedClient
from service.oauth.errors import InvalidClientMetadata
from service.oauth.registration import new_client, parse_jwks
from service.storage import RealmGone, Store

__all__ = ["ClientNotFound", "ClientRegistry"]


#: Clients in one realm (each costs about 700 bytes of store memory).
MAX_CLIENTS_PER_REALM: Final = 100_000


class TooManyClients(Conflict):
    """The realm has as many clients as it may."""


class ClientNotFound(NotFound):
    """No such client in the realm."""

    def __init__(self, client_id: str) -> None:
        super().__init__(f"client {client_id!r} does not exist in this realm")


class ClientRegistry:
    """Clients on a :class:`~service.storage.Store`."""

    def __init__(self, store: Store, clock: Clock, cache: ClientCache | None = None) -> None:
        self._store = store
        self._clock = clock
        self._cache = cache or ClientCache(store)

    @property
    def cache(self) -> ClientCache:
        """The in-process client cache (the change watcher keeps it current)."""
        return self._cache

    async def register(
        self, realm: str, metadata: Mapping[str, Any], *, actor: Actor = SYSTEM
    ) -> tuple[Client, str | None]:
        """Validate and store a new client (RFC 7591 §3.1); the secret is returned only here.

        :raises InvalidClientMetadata:
        :raises RealmNotFound:
        """
        client, secret = new_client(metadata, now=self._clock.now())
        # Checked before the write, so that a registration racing another may pass
        # the limit by one or two: the bound is on growth, not an exact count.
        if await self._store.count_clients(realm) >= MAX_CLIENTS_PER_REALM:
            raise TooManyClients(
                f"the realm has {MAX_CLIENTS_PER_REALM} clients, the most a realm may"
            )
        event = new_event(
            "client.registered",
            actor,
            realm,
            client.client_id_issued_at,
            client.client_id,
            token_endpoint_auth_method=client.token_endpoint_auth_method,
            token_profile=client.token_profile,
        )
        await self._put(realm, client, events=[event])
        return client, secret

    async def find(self, realm: str, client_id: str) -> PreparedClient | None:
        """The client with its keys imported, from the cache, or ``None``.

        :raises Unavailable: not cached, and the store does not answer.
        """
        return await self._cache.get(realm, client_id)

    async def get(self, realm: str, client_id: str) -> Client:
        """The client, as stored.

        :raises ClientNotFound:
        """
        client = await self._store.get_client(realm, client_id)
        if client is None:
            raise ClientNotFound(client_id)
        return client

    async def list(self, realm: str, limit: int, cursor: str | None) -> Page[Client]:
        """Clients newest first.

        :raises RealmNotFound:
        """
        page = await self._store.page_clients(realm, limit, cursor)
        if page is None:
            raise RealmNotFound(realm)
        return page

    async def delete(self, realm: str, client_id: str, *, actor: Actor = SYSTEM) -> None:
        """Delete a client; introspection reports its tokens inactive from now on (a
        verifier checking signatures offline cannot know until they expire).

        :raises ClientNotFound:
        """
        client = await self.get(realm, client_id)
        event = new_event("client.deleted", actor, realm, self._clock.now(), client_id)
        change = await self._store.delete_client(realm, client, events=[event])
        if change is None:
            raise ClientNotFound(client_id)
        log_events([event])
        await self._store.release_client_keys(realm, client_id, _thumbprints(client))
        # Here at once; other replicas when the store's message reaches them.
        self._cache.changed(change)

    async def replace_jwks(
        self, realm: str, client_id: str, jwks: object, *, actor: Actor = SYSTEM
    ) -> Client:
        """Replace a client's public keys (its own key rollover).

        :raises InvalidClientMetadata:
        :raises ClientNotFound:
        """
        keys = parse_jwks(jwks)
        previous = await self.get(realm, client_id)
        client = dataclasses.replace(previous, jwks=keys)
        # The kids name the new keys (public, as the JWKS is): enough to tell a rollover.
        kids = " ".join(str(k.get("kid", "")) for k in keys)
        event = new_event(
            "client.jwks_replaced", actor, realm, self._clock.now(), client_id, kids=kids
        )
        await self._put(realm, client, previous, events=[event])
        return client

    async def _put(
        self,
        realm: str,
        client: Client,
        previous: Client | None = None,
        *,
        events: Sequence[AuditEvent] = (),
    ) -> None:
        # A public key belongs to one client of the realm at most: a client holding
        # another's key could sign assertions as either. Claimed first, atomically
        # for all of the client's keys; given back if the write fails.
        thumbprints = _thumbprints(client)
        if await self._store.claim_client_keys(realm, client.client_id, thumbprints):
            raise InvalidClientMetadata("jwks: a key is already registered for another client")
        try:
            change = await self._store.put_client(realm, client, events=events)
        except RealmGone as exc:
            await self._store.release_client_keys(realm, client.client_id, thumbprints)
            raise RealmNotFound(realm) from exc
        log_events(events)
        self._cache.changed(change)  # here at once; other replicas by the message
        if previous is not None:
            dropped = sorted(set(_thumbprints(previous)) - set(thumbprints))
            await self._store.release_client_keys(realm, client.client_id, dropped)


def _thumbprints(client: Client) -> list[str]:
    return [crypto.thumbprint(key) for key in client.jwks]
