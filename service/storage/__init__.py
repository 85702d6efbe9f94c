"""Persistence, and the only package that imports redis.

``base`` defines what the rest of the service may ask of a store; ``redis`` is the
one implementation (redis.asyncio, atomic through Lua scripts whose keys share the
realm's hash tag); ``embedded`` runs the bundled Valkey server for the default
set-up. The store holds key material only in sealed form.
"""

from service.storage.base import (
    RESUBSCRIBED,
    Change,
    InvalidCursor,
    Quota,
    QuotaExceeded,
    RealmExists,
    RealmGone,
    StorageError,
    Store,
    StoreUnavailable,
    VersionedClient,
)

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
