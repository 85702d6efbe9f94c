"""JSON shapes of the admin API's resources."""

from __future__ import annotations

from typing import Any

from service.clock import rfc3339
from service.models import KeyRecord, Realm

__all__ = ["key_object", "realm_object"]


def key_object(key: KeyRecord, secret: str | None = None) -> dict[str, Any]:
    """A key as the API shows it: never its private half; an HS256 secret only on creation."""
    body: dict[str, Any] = {
        "id": key.id,
        "kid": key.kid,
        "algo": key.algo,
        "use": key.use,
        "name": key.name,
        "status": key.status,
        "expired": key.expired,
        "public_jwk": dict(key.public_jwk) if key.public_jwk is not None else None,
        "created_at": rfc3339(key.created_at),
        "expires_at": rfc3339(key.expires_at),
    }
    if secret is not None:
        body["key"] = secret
    return body


def realm_object(realm: Realm, issuer: str) -> dict[str, Any]:
    """A realm, with the URL of its JWKS."""
    base = issuer if realm.name == "default" else f"{issuer}/realms/{realm.name}"
    return {
        "name": realm.name,
        "created_at": rfc3339(realm.created_at),
        "jwks_uri": f"{base}/.well-known/jwks.json",
    }
