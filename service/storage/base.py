"""What the service asks of a store, and the store's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Final, Protocol

from service.errors import Conflict, InvalidInput, NotFound, ServiceError, Unavailable
from service.models import AdminKey, Client, KeyRecord, KeyRing, Page, Realm

__all__ = [
    "CHANGES_ALL",
    "InvalidCursor",
    "RealmExists",
    "RealmGone",
    "StorageError",
    "Store",
    "StoreUnavailable",
]

#: Yielded by :meth:`Store.changes` after (re)subscribing: messages may have been
#: missed, so every cached realm must be checked.
CHANGES_ALL: Final = "*"


class StorageError(ServiceError):
    """Base of the storage layer's errors."""


class StoreUnavailable(StorageError, Unavailable):
    """The store did not answer (connection refused, timeout, failover in progress)."""


class InvalidCursor(StorageError, InvalidInput):
    """A pagination cursor that this store did not hand out."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="cursor")


class RealmExists(StorageError, Conflict):
    """A realm of that name exists already."""


class RealmGone(StorageError, NotFound):
    """The realm was deleted while the change was being made."""


class Store(Protocol):
    """Async persistence for realms, key rings and admin keys.

    Every method that changes a realm's keys is atomic and publishes the realm's
    name on the change channel in the same step.
    """

    async def ping(self) -> None:
        """Check that the store answers.

        :raises StoreUnavailable: it does not.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def create_realm(self, realm: Realm, keys: Sequence[KeyRecord], now: float) -> None:
        """Create ``realm`` with its first keys, all or nothing.

        :raises RealmExists: the name is taken.
        """
        ...

    async def delete_realm(self, name: str) -> bool:
        """Delete a realm and everything in it; ``False`` if there was none."""
        ...

    async def update_realm(self, realm: Realm) -> None:
        """Replace a realm's settings (its keys are untouched).

        :raises RealmGone: there is no such realm.
        """
        ...

    async def list_realms(self, limit: int, cursor: str | None) -> Page[Realm]:
        """Realms by name, ``limit`` at a time, after ``cursor``."""
        ...

    async def load_ring(self, realm: str) -> KeyRing | None:
        """Every stored key of ``realm`` with the ring's version, or ``None``."""
        ...

    async def save_ring(
        self,
        ring: KeyRing,
        put: Sequence[KeyRecord],
        delete: Sequence[KeyRecord],
        now: float,
    ) -> bool:
        """Compare-and-swap: apply the changes only if the ring is still at ``ring.version``.

        A record with ``expires_at`` gets a Redis TTL ending then.

        :returns: ``False`` when another writer changed the ring first.
        :raises RealmGone: the realm was deleted meanwhile.
        """
        ...

    async def ring_version(self, realm: str) -> str | None:
        """The ring's current version token (cheap), or ``None`` for no realm."""
        ...

    async def page_keys(self, realm: str, limit: int, cursor: str | None) -> Page[KeyRecord] | None:
        """Keys newest first, ``limit`` at a time; ``None`` if there is no realm."""
        ...

    async def get_key(self, realm: str, key_id: str) -> KeyRecord | None:
        """One key record by id."""
        ...

    async def put_client(self, realm: str, client: Client) -> None:
        """Create or replace a client.

        :raises RealmGone: there is no such realm.
        """
        ...

    async def get_client(self, realm: str, client_id: str) -> Client | None:
        """One client by id."""
        ...

    async def page_clients(self, realm: str, limit: int, cursor: str | None) -> Page[Client] | None:
        """Clients newest first; ``None`` if there is no realm."""
        ...

    async def delete_client(self, realm: str, client: Client) -> bool:
        """Delete a client; ``False`` if it was gone already."""
        ...

    async def consume_jti(self, realm: str, client_id: str, jti: str, ttl: float) -> bool:
        """Mark a client assertion's jti used for ``ttl`` seconds; ``False`` on a replay."""
        ...

    def changes(self) -> AsyncIterator[str]:
        """Names of realms as they change; :data:`CHANGES_ALL` after every (re)subscribe."""
        ...

    async def put_admin_key(self, digest: str, key: AdminKey) -> None:
        """Store an admin key under the hash of its secret."""
        ...

    async def get_admin_key(self, digest: str) -> AdminKey | None:
        """The admin key whose secret hashes to ``digest``."""
        ...

    async def kek_check(self, value: str) -> str:
        """Store ``value`` as the KEK check if there is none; return the stored one."""
        ...
