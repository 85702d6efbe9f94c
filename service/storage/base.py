"""What the service asks of a store, and the store's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from service.audit import AuditEvent
from service.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    RateLimited,
    ServiceError,
    Unavailable,
)
from service.models import AdminKey, Client, KeyRecord, KeyRing, Page, Realm

__all__ = [
    "RESUBSCRIBED",
    "Change",
    "InvalidCursor",
    "Quota",
    "QuotaExceeded",
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


@dataclass(frozen=True)
class Quota:
    """One counter of :meth:`Store.count`, what to do to it, and its limit.

    The counter is ``scope`` for ``subject`` (a client id, an address, an admin
    key's digest); with a ``realm`` it lies in that realm's hash slot, else in its
    own. ``op``:

    - ``hit``: one more request; the window of ``window`` seconds starts at the first,
      and the quota is exceeded past ``limit``;
    - ``fail``: one more failure, counted the same way, except that reaching
      ``limit`` starts a whole new window: the lockout;
    - ``check``: only read it; exceeded at ``limit`` (a lockout in force);
    - ``reset``: delete it.
    """

    scope: str
    subject: str
    realm: str | None
    op: Literal["hit", "fail", "check", "reset"]
    limit: int = 0
    window: float = 60.0
    #: How many requests a ``hit`` counts (a batch of them, counted at once).
    amount: int = 1


class StorageError(ServiceError):
    """Base of the storage layer's errors."""


class StoreUnavailable(StorageError, Unavailable):
    """The store did not answer (connection refused, timeout, failover in progress).

    ``misconfigured``: why a retry will not help, when the client's error says so (a
    certificate that does not verify, refused credentials), in the service's words.
    """

    def __init__(self, detail: str, *, misconfigured: str | None = None) -> None:
        super().__init__(detail)
        self.misconfigured = misconfigured


class InvalidCursor(StorageError, InvalidInput):
    """A pagination cursor that this store did not hand out."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="cursor")


class QuotaExceeded(StorageError, RateLimited):
    """A quota of :meth:`Store.count` is exceeded: ``quota``, for ``retry_after`` s more."""

    retry_after: int

    def __init__(self, quota: Quota, retry_after: int) -> None:
        super().__init__(f"{quota.scope} limit exceeded", retry_after=retry_after)
        self.quota = quota


class RealmExists(StorageError, Conflict):
    """A realm of that name exists already."""


class RealmGone(StorageError, NotFound):
    """The realm was deleted while the change was being made."""


class Store(Protocol):
    """Async persistence for realms, key rings and admin keys.

    Every method that changes a realm's keys is atomic and publishes the realm's
    name on the change channel in the same step. A method that changes a realm
    takes the audit ``events`` of the change and appends them to the realm's event
    stream in that same atomic step; the stream is capped (oldest first) and goes
    with the realm.
    """

    async def ping(self) -> None:
        """Check that the store answers.

        :raises StoreUnavailable: it does not.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def create_realm(
        self,
        realm: Realm,
        keys: Sequence[KeyRecord],
        now: float,
        *,
        events: Sequence[AuditEvent] = (),
    ) -> None:
        """Create ``realm`` with its first keys (and its first ``events``), all or nothing.

        :raises RealmExists: the name is taken.
        """
        ...

    async def delete_realm(self, name: str) -> bool:
        """Delete a realm and everything in it, and the admin keys scoped to it;
        ``False`` if there was none."""
        ...

    async def get_realm(self, name: str) -> Realm | None:
        """The realm's record as stored now (not cached), or ``None``."""
        ...

    async def update_realm(self, realm: Realm, *, events: Sequence[AuditEvent] = ()) -> None:
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
        *,
        events: Sequence[AuditEvent] = (),
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

    async def put_client(
        self, realm: str, client: Client, *, events: Sequence[AuditEvent] = ()
    ) -> Change:
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

    async def delete_client(
        self, realm: str, client: Client, *, events: Sequence[AuditEvent] = ()
    ) -> Change | None:
        """Delete a client, publishing the change.

        :returns: the change message it published, or ``None`` if it was gone already.
        """
        ...

    async def consume_jti(
        self, realm: str, client_id: str, jti: str, ttl: float, quotas: Sequence[Quota] = ()
    ) -> bool:
        """Mark a client assertion's jti used for ``ttl`` seconds; ``False`` on a replay.

        ``quotas`` are counted as by :meth:`count`, in the same round trip.

        :raises QuotaExceeded: one of ``quotas`` is (the jti is used all the same).
        """
        ...

    async def count(self, quotas: Sequence[Quota]) -> list[int]:
        """Apply every quota's op, atomically per counter, in one round trip.

        :returns: each counter's count after its op.
        :raises QuotaExceeded: the first quota exceeded (every op was applied).
        """
        ...

    async def tally(self, quotas: Sequence[Quota]) -> list[tuple[int, float]]:
        """Apply every quota's op like :meth:`count`, and return each counter's count
        and the seconds left in its window, whether a limit is exceeded or not."""
        ...

    async def count_clients(self, realm: str) -> int:
        """How many clients the realm has."""
        ...

    async def count_realms(self) -> int:
        """How many realms the store holds."""
        ...

    async def claim_client_keys(
        self, realm: str, client_id: str, thumbprints: Sequence[str]
    ) -> str | None:
        """Make the client the owner of these public keys (RFC 7638 thumbprints), all
        or none, in one atomic step.

        :returns: ``None``, or the id of another client that owns one of them.
        """
        ...

    async def release_client_keys(
        self, realm: str, client_id: str, thumbprints: Sequence[str]
    ) -> None:
        """Give up the client's ownership of these keys."""
        ...

    def changes(self) -> AsyncIterator[Change]:
        """Key rings and clients as they change; :data:`RESUBSCRIBED` after every (re)subscribe."""
        ...

    async def put_admin_key(
        self, digest: str, key: AdminKey, *, events: Sequence[AuditEvent] = ()
    ) -> None:
        """Store an admin key under the hash of its secret; ``events`` go to its realm's
        stream, or for a global key to the global stream.

        A realm-scoped key is recorded with its realm, so that deleting the realm
        deletes the key.

        :raises RealmGone: the key's realm (at ``key.incarnation``) does not exist.
        """
        ...

    async def get_admin_key(self, digest: str) -> AdminKey | None:
        """The admin key whose secret hashes to ``digest``."""
        ...

    async def kek_check(self, value: str) -> str:
        """Store ``value`` as the KEK check if there is none; return the stored one."""
        ...

    async def replace_kek_check(self, value: str) -> None:
        """Store ``value`` as the KEK check, in place of the one there (a rekey's last step)."""
        ...

    async def kek_ids(self) -> frozenset[str]:
        """The ids of the KEKs that the store's secrets may be sealed under (not
        counting the one the KEK check names)."""
        ...

    async def add_kek_id(self, kek_id: str) -> None:
        """Record that secrets may be sealed under ``kek_id`` (before sealing any)."""
        ...

    async def remove_kek_ids(self, kek_ids: Sequence[str]) -> None:
        """Forget KEK ids that nothing in the store is sealed under any more."""
        ...

    async def append_global_events(self, events: Sequence[AuditEvent]) -> None:
        """Append to the global event stream (realms created and deleted, global admin
        keys): it outlives every realm, and lies outside every realm's slot."""
        ...

    async def page_events(
        self, realm: str | None, limit: int, cursor: str | None
    ) -> Page[AuditEvent] | None:
        """Events newest first, ``limit`` at a time, after ``cursor``: the realm's, or
        with ``None`` the global stream's; ``None`` if there is no such realm.

        :raises InvalidCursor:
        """
        ...
