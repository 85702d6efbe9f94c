"""JSON shapes of the admin API's resources."""

from __future__ import annotations

from typing import Any

from service.clock import rfc3339
from service.models import DEFAULT_REALM, JWS_ALG, Client, KeyRecord, Realm

__all__ = ["client_object", "key_object", "realm_object"]


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
    if key.status == "verify_only":
        body["expected_issuer"] = key.expected_issuer
        body["expected_audience"] = key.expected_audience
    if secret is not None:
        body["key"] = secret
    return body


def realm_object(realm: Realm, issuer: str) -> dict[str, Any]:
    """A realm, with the URL of its JWKS."""
    base = issuer if realm.name == DEFAULT_REALM else f"{issuer}/realms/{realm.name}"
    return {
        "name": realm.name,
        "created_at": rfc3339(realm.created_at),
        "rotation_interval": realm.rotation_interval,
        "jwks_uri": f"{base}/.well-known/jwks.json",
    }


def client_object(client: Client, secret: str | None = None) -> dict[str, Any]:
    """A client's registration response (RFC 7591 §3.2.1); the secret only on creation."""
    body: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": int(client.client_id_issued_at),
        "client_name": client.client_name,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "grant_types": list(client.grant_types),
        "scope": client.scope,
        "jwks": {"keys": [dict(k) for k in client.jwks]} if client.jwks else None,
        "allowed_rooms": list(client.allowed_rooms),
        "token_profile": client.token_profile,
        "jitsi_app_id": client.jitsi_app_id,
        "allowed_features": list(client.allowed_features),
        "default_audience": client.default_audience,
        "allowed_audiences": list(client.allowed_audiences),
        "allowed_tenants": list(client.allowed_tenants)
        if client.token_profile == "jitsi"
        else None,
        "access_token_signed_response_alg": JWS_ALG[client.access_token_algo],
    }
    body = {k: v for k, v in body.items() if v is not None}
    if secret is not None:
        body["client_secret"] = secret
        body["client_secret_expires_at"] = 0  # RFC 7591 §3.2.1: 0 = never
    return body
