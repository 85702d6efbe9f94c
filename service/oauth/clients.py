"""Registered clients of each realm: register, find, list, delete, replace keys.

Token requests find clients through the in-process :class:`ClientCache`; the admin
API reads and writes the store itself, so it always sees what is stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from service.clock import Clock
from service.errors import NotFound
from service.keys import RealmNotFound
from service.models import Client, Page
from service.oauth.client_cache import ClientCache, PreparedClient
from service.oauth.registration import new_client, parse_jwks
from service.storage import RealmGone, Store

__all__ = ["ClientNotFound", "ClientRegistry"]


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

    async def register(self, realm: str, metadata: Mapping[str, Any]) -> tuple[Client, str | None]:
        """Validate and store a new client (RFC 7591 §3.1); the secret is returned only here.

        :raises InvalidClientMetadata:
        :raises RealmNotFound:
        """
        client, secret = new_client(metadata, now=self._clock.now())
        await self._put(realm, client)
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

    async def delete(self, realm: str, client_id: str) -> None:
        """Delete a client; its tokens stay valid until they expire.

        :raises ClientNotFound:
        """
        change = await self._store.delete_client(realm, await self.get(realm, client_id))
        if change is None:
            raise ClientNotFound(client_id)
        # Here at once; other replicas when the store's message reaches them.
        self._cache.changed(change)

    async def replace_jwks(self, realm: str, client_id: str, jwks: object) -> Client:
        """Replace a client's public keys (its own key rollover).

        :raises InvalidClientMetadata:
        :raises ClientNotFound:
        """
        keys = parse_jwks(jwks)
        client = dataclasses.replace(await self.get(realm, client_id), jwks=keys)
        await self._put(realm, client)
        return client

    async def _put(self, realm: str, client: Client) -> None:
        try:
            change = await self._store.put_client(realm, client)
        except RealmGone as exc:
            raise RealmNotFound(realm) from exc
        self._cache.changed(change)  # here at once; other replicas by the message
