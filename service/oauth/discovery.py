"""Authorization server metadata (RFC 8414 §2; also served as OpenID discovery)."""

from __future__ import annotations

from typing import Any

from service.models import AUTH_METHODS

__all__ = ["ASSERTION_SIGNING_ALGS", "server_metadata"]

#: The algorithms a private_key_jwt assertion may use (which one is decided by the key).
ASSERTION_SIGNING_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "EdDSA")


def server_metadata(issuer: str, scopes: list[str] | None = None) -> dict[str, Any]:
    """The metadata document of the realm whose issuer identifier is ``issuer``."""
    document: dict[str, Any] = {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/oauth/token",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "registration_endpoint": f"{issuer}/oauth/register",
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_SIGNING_ALGS),
        "introspection_endpoint_auth_methods_supported": [*AUTH_METHODS, "bearer"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
    }
    if scopes:
        document["scopes_supported"] = scopes
    return document
