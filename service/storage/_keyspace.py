"""Every Redis key name the service uses comes from here.

All of a realm's keys carry the realm as a hash tag (``jwks:{realm}:...``) so they
share one Cluster slot and one Lua script can change them atomically.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "jwks"
#: Pub/sub channel carrying ``<realm> <new ring version>`` when a realm's key ring
#: or settings change, and ``<realm>`` when the realm is deleted. (Until 0.x it was
#: ``jwks:changes`` with bare names; replicas still on it fall back to their
#: periodic version check.)
CHANGES_CHANNEL: Final = f"{PREFIX}:ring-changes"
#: Pub/sub channel carrying ``<realm> <client_id> <new client version>`` when a
#: client changes, or ``<realm>`` when all of a realm's clients go (realm deleted).
CLIENT_CHANGES_CHANNEL: Final = f"{PREFIX}:client-changes"
#: Sorted set (all scores 0, ordered by name) of every realm.
REALMS: Final = f"{PREFIX}:realms"
#: A check value sealed under a KEK the store's secrets are sealed with (the newest,
#: after a rekey); a KEK that does not open it is not this store's.
KEK_CHECK: Final = f"{PREFIX}:kek-check"
#: Set of the ids of every KEK the store's secrets may be sealed under: each process
#: adds its first KEK's before it seals anything, and a finished rekey removes the rest.
KEK_IDS: Final = f"{PREFIX}:kek-ids"
#: Stream of the audit events outside any one realm's lifetime: realms created and
#: deleted, admin keys for every realm (a realm's own stream goes with the realm).
EVENTS: Final = f"{PREFIX}:events"


def realm_key(realm: str, *parts: str) -> str:
    """A key inside ``realm``'s hash slot: ``jwks:{realm}:part:part``."""
    return ":".join((f"{PREFIX}:{{{realm}}}", *parts))


def global_key(*parts: str) -> str:
    """A key outside every realm: ``jwks:part:part``."""
    return ":".join((PREFIX, *parts))


def meta(realm: str) -> str:
    """The realm's own record; its existence is the realm's existence."""
    return realm_key(realm, "realm")


def version(realm: str) -> str:
    """The key ring's version token, replaced on every change (compare-and-swap)."""
    return realm_key(realm, "version")


def key_index(realm: str) -> str:
    """Sorted set of ``<created ms>:<key id>`` members, for newest-first paging."""
    return realm_key(realm, "keys")


def key_record_prefix(realm: str) -> str:
    """Prefix of the realm's key records; the id follows."""
    return realm_key(realm, "key") + ":"


def admin_key(digest: str) -> str:
    """An admin key, stored under the SHA-256 of its secret."""
    return global_key("admin", digest)


def admin_key_index(realm: str) -> str:
    """Set of the digests of the admin keys scoped to ``realm``, to delete them with it."""
    return realm_key(realm, "admin-keys")


def client_index(realm: str) -> str:
    """Sorted set of ``<issued ms>:<client_id>`` members, for newest-first paging."""
    return realm_key(realm, "clients")


def client_version(realm: str) -> str:
    """A token replaced on every change to one of the realm's clients."""
    return realm_key(realm, "clients-version")


def client_record_prefix(realm: str) -> str:
    """Prefix of the realm's client records; the client_id follows."""
    return realm_key(realm, "client") + ":"


def key_owners(realm: str) -> str:
    """Hash of ``<RFC 7638 thumbprint>`` -> ``<client_id>``: whose public key is whose."""
    return realm_key(realm, "key-owners")


def events(realm: str) -> str:
    """Stream of the realm's audit events, capped, oldest trimmed first."""
    return realm_key(realm, "events")


def jti(realm: str, digest: str) -> str:
    """A used client-assertion jti (by digest of client_id and jti), kept until it expires."""
    return realm_key(realm, "jti", digest)


def quota(scope: str, subject: str, realm: str | None) -> str:
    """A rate-limit or failure counter: in ``realm``'s slot (a client's), or in its
    own, tagged by ``subject`` (an address's, an admin key's), so that the counters of
    one subject share a slot and one script counts them together."""
    if realm is not None:
        return realm_key(realm, "quota", scope, subject)
    return f"{PREFIX}:{{{subject}}}:quota:{scope}"


def slot_tag(key: str) -> str:
    """The hash tag of a key built here (what Cluster hashes to pick its slot)."""
    return key[key.index("{") + 1 : key.index("}")]
