"""What the service asks of a store, and the store's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from service.errors import Conflict, InvalidInput, NotFound, ServiceError, Unavailable
from service.models import AdminKey, Client, KeyRecord, KeyRing, Page, Realm

__all__ = [
    "RESUBSCRIBED",
    "Change",
    "InvalidCursor",
    "RealmExists",
    "RealmGone",
    "StorageError",
    "Store",
    "StoreUnavailable",
    "VersionedClient",
]


@dataclass(frozen=True)
class Change:
    """One message of :meth:`Store.changes`.

    ``realm`` changed: its key ring (``version`` is the ring's new version), or
    with ``clients`` set, one of its clients (``client_id``; ``version`` is the
    realm's new client version and ``previous`` the one it replaced, '' for none)
    or all of them (``client_id`` is ``None``). A ``version`` of ``None`` means the
    realm went.
    """

    realm: str | None
    clients: bool = False
    client_id: str | None = None
    version: str | None = None
    previous: str | None = None


#: Yielded after every (re)subscribe: messages may have been missed, so everything
#: cached must be checked against the store.
RESUBSCRIBED: Final = Change(None)


@dataclass(frozen=True)
class VersionedClient:
    """A client as stored (``None``: there is none), with the realm's client version
    read in the same atomic step, for a cache to check later."""

    client: Client | None
    version: str


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

    async def ring_versions(self, realms: Sequence[str]) -> list[str | None]:
        """:meth:`ring_version` of each realm, in one round trip."""
        ...

    async def page_keys(self, realm: str, limit: int, cursor: str | None) -> Page[KeyRecord] | None:
        """Keys newest first, ``limit`` at a time; ``None`` if there is no realm."""
        ...

    async def get_key(self, realm: str, key_id: str) -> KeyRecord | None:
        """One key record by id."""
        ...

    async def put_client(self, realm: str, client: Client) -> Change:
        """Create or replace a client; publishes the change.

        :returns: the change message it published (to apply to this process's cache at once).
        :raises RealmGone: there is no such realm.
        """
        ...

    async def get_client(self, realm: str, client_id: str) -> Client | None:
        """One client by id."""
        ...

    async def load_client(self, realm: str, client_id: str) -> VersionedClient:
        """One client by id, with the realm's client version (for caches)."""
        ...

    async def client_versions(self, realms: Sequence[str]) -> list[str]:
        """The client version of each realm ('' if none was ever set), in one round trip."""
        ...

    async def page_clients(self, realm: str, limit: int, cursor: str | None) -> Page[Client] | None:
        """Clients newest first; ``None`` if there is no realm."""
        ...

    async def delete_client(self, realm: str, client: Client) -> Change | None:
        """Delete a client, publishing the change.

        :returns: the change message it published, or ``None`` if it was gone already.
        """
        ...

    async def consume_jti(self, realm: str, client_id: str, jti: str, ttl: float) -> bool:
        """Mark a client assertion's jti used for ``ttl`` seconds; ``False`` on a replay."""
        ...

    def changes(self) -> AsyncIterator[Change]:
        """Key rings and clients as they change; :data:`RESUBSCRIBED` after every (re)subscribe."""
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
