"""Values shared by every layer: realms, key records, key rings, admin keys, pages.

These are plain frozen dataclasses with no behaviour that needs I/O; the storage
layer persists them and the keys layer decides how they change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Literal, TypeVar, get_args

__all__ = [
    "ALGOS",
    "ASYMMETRIC_ALGOS",
    "AUTH_METHODS",
    "DEFAULT_KEK_ID",
    "DEFAULT_REALM",
    "JWS_ALG",
    "KEK_ID",
    "REALM_NAME",
    "AdminKey",
    "Algo",
    "AuthMethod",
    "Client",
    "KeyRecord",
    "KeyRing",
    "KeyStatus",
    "Page",
    "Realm",
]

Algo = Literal["rs256", "hs256", "es256", "eddsa"]
KeyStatus = Literal["next", "active", "expired", "verify_only"]
AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
TokenProfile = Literal["rfc9068", "jitsi"]

ALGOS: Final[tuple[Algo, ...]] = get_args(Algo)
AUTH_METHODS: Final[tuple[AuthMethod, ...]] = get_args(AuthMethod)
TOKEN_PROFILES: Final[tuple[TokenProfile, ...]] = get_args(TokenProfile)
ASYMMETRIC_ALGOS: Final[frozenset[Algo]] = frozenset({"rs256", "es256", "eddsa"})
#: The JWS "alg" (RFC 7518 §3.1, RFC 8037 §3.1) each key algorithm signs with.
JWS_ALG: Final[Mapping[Algo, str]] = {
    "rs256": "RS256",
    "hs256": "HS256",
    "es256": "ES256",
    "eddsa": "EdDSA",
}
#: A realm name: 1-64 of a-z, 0-9 and '-'. It is also the Redis hash tag.
REALM_NAME: Final = re.compile(r"[a-z0-9-]{1,64}")
#: The realm that exists from the first start; its URLs have no /realms/ prefix.
DEFAULT_REALM: Final = "default"
#: A key-encryption key's id in ``JWKS_KEK`` (``id:base64,...``) and in every value
#: sealed under it: 1-32 of A-Z, a-z, 0-9, '-' and '_' (never '.', ':' or ',', which
#: separate it from what follows).
KEK_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")
#: The id of a KEK given without one (``JWKS_KEK=<base64>``, or ``<data dir>/kek``),
#: and of every value sealed before KEKs had ids.
DEFAULT_KEK_ID: Final = "0"

T = TypeVar("T")


@dataclass(frozen=True)
class Realm:
    """A tenant: its own keys, clients and issuer."""

    name: str
    created_at: float
    #: Overrides JWKS_ROTATION_INTERVAL for this realm (seconds; 0 = no scheduled rotation).
    rotation_interval: int | None = None
    #: Random, made when the realm is created: a realm deleted and created again
    #: under its old name is another incarnation, and admin keys made for the old
    #: one are refused. ``None`` for realms stored before incarnations existed.
    incarnation: str | None = None


@dataclass(frozen=True)
class KeyRecord:
    """One JWT key of a realm, as stored.

    ``sealed_secret`` is the private JWK (or the HS256 secret) sealed with
    AES-256-GCM; the store never sees it in the clear. ``expires_at`` is when an
    expired key stops verifying and its record is pruned; ``retired_at`` is when it
    stopped signing.
    """

    id: str
    kid: str
    algo: Algo
    status: KeyStatus
    created_at: float
    name: str | None = None
    use: str = "sign"
    public_jwk: Mapping[str, Any] | None = field(default=None, hash=False)
    sealed_secret: str | None = None
    activated_at: float | None = None
    retired_at: float | None = None
    expires_at: float | None = None
    #: For uploaded keys: what the tenant's tokens must carry to introspect active.
    expected_issuer: str | None = None
    expected_audience: str | None = None

    @property
    def expired(self) -> bool:
        """Whether the key has been replaced and only verifies until ``expires_at``."""
        return self.status == "expired"

    @property
    def signs(self) -> bool:
        """Whether tokens are signed with this key now."""
        return self.status == "active"


@dataclass(frozen=True)
class KeyRing:
    """Every live key of one realm, with the store's version token for CAS."""

    realm: Realm
    version: str
    keys: tuple[KeyRecord, ...] = ()

    def active(self, algo: Algo) -> KeyRecord | None:
        """The key that signs for ``algo``, if any."""
        return next((k for k in self.keys if k.algo == algo and k.status == "active"), None)

    def by_id(self, key_id: str) -> KeyRecord | None:
        """The key with this ``id``, if it is in the ring."""
        return next((k for k in self.keys if k.id == key_id), None)

    def by_kid(self, kid: str) -> KeyRecord | None:
        """The key with this ``kid``, if it is in the ring."""
        return next((k for k in self.keys if k.kid == kid), None)

    def verifying(self, now: float) -> tuple[KeyRecord, ...]:
        """Keys that still verify at ``now``: all but the expired ones past their grace."""
        return tuple(k for k in self.keys if k.expires_at is None or k.expires_at > now)


@dataclass(frozen=True)
class AdminKey:
    """An admin API credential. Only a hash of the secret is ever stored.

    A realm-scoped key holds the :attr:`Realm.incarnation` it was made for, and is
    valid only while that incarnation exists.
    """

    id: str
    realm: str | None
    created_at: float
    incarnation: str | None = None

    def allows(self, realm: str) -> bool:
        """Whether this key may act on ``realm`` (global keys may act on every realm)."""
        return self.realm is None or self.realm == realm


@dataclass(frozen=True)
class Client:
    """An OAuth client of a realm (RFC 7591 metadata plus our extensions).

    ``client_secret_hash`` is the SHA-256 of the secret, for the secret methods;
    ``jwks`` holds the public keys of a private_key_jwt client.
    """

    client_id: str
    client_id_issued_at: float
    token_endpoint_auth_method: AuthMethod
    client_name: str | None = None
    grant_types: tuple[str, ...] = ("client_credentials",)
    scope: str | None = None
    jwks: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    client_secret_hash: str | None = None
    allowed_rooms: tuple[str, ...] = ()
    token_profile: TokenProfile = "rfc9068"
    jitsi_app_id: str | None = None
    allowed_features: tuple[str, ...] = ()
    default_audience: str | None = None
    #: The key algorithm access tokens are signed with (rfc9068 profile).
    access_token_algo: Algo = "rs256"
    #: Exact audiences (RFC 8707 resource indicators) the client may ask for, beside
    #: its default audience; none: only the default.
    allowed_audiences: tuple[str, ...] = ()
    #: Jitsi tenants (the token's ``sub``) the client may ask for; none: the realm's
    #: name only. ``"*"`` (every tenant) only when listed.
    allowed_tenants: tuple[str, ...] = ()

    @property
    def scopes(self) -> frozenset[str]:
        """The scopes the client may ask for."""
        return frozenset((self.scope or "").split())


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a cursor-paginated listing."""

    items: tuple[T, ...]
    next_cursor: str | None
