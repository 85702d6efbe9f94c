"""The public paths: JWKS, health, this document, and the OAuth endpoints of an issuer."""

from __future__ import annotations

from typing import Final

from service.http.openapi._parts import (
    ADMIN,
    CLIENT,
    FORM,
    JSON,
    NO_CACHE_HEADER,
    PROBLEM,
    Operation,
    body,
    headers_of,
    oauth_errors,
    ok,
    operation,
    param,
    path_param,
    problems,
)
from service.http.openapi._schemas import ref
from service.http.wellknown import JWKS_MEDIA_TYPE

__all__ = ["issuer_paths", "public_paths"]

_PEM: Final = "application/x-pem-file"
_METRICS: Final = "text/plain"


def public_paths() -> dict[str, dict[str, Operation]]:
    """The JWKS of each realm, the probes, and this document."""
    jwks_headers = {"ETag": True, "Cache-Control": True, "Access-Control-Allow-Origin": True}
    if_none_match = {
        "name": "If-None-Match",
        "in": "header",
        "description": "A previous ETag: 304 when it still matches",
        "schema": {"type": "string"},
    }

    def jwks(op_id: str, realm: bool) -> dict[str, Operation]:
        statuses = {
            "200": ok("The realm's public keys", "Jwks", JWKS_MEDIA_TYPE, headers=jwks_headers),
            "304": ok("Not modified", None, headers=jwks_headers),
            **(problems(404, 503) if realm else {}),
        }
        params = [param("Realm")] if realm else []
        return {
            "get": operation(
                op_id,
                "The realm's JWKS (RFC 7517 §5)",
                "JWKS",
                statuses,
                parameters=[*params, if_none_match],
            )
        }

    return {
        "/.well-known/jwks.json": jwks("getJwks", realm=False),
        "/realms/{realm}/.well-known/jwks.json": jwks("getRealmJwks", realm=True),
        "/healthz": {
            "get": operation("healthz", "Liveness", "Health", {"200": ok("Alive", "Health")}),
        },
        "/readyz": {
            "get": operation(
                "readyz",
                "Readiness: this process can serve (the store's state is reported)",
                "Health",
                {"200": ok("Ready", "Readiness"), "503": ok("Not ready", "Readiness")},
            ),
        },
        "/metrics": {
            "get": operation(
                "getMetrics",
                "Prometheus metrics of every worker, in the text exposition format",
                "Metrics",
                {
                    "200": {
                        "description": "The exposition (text/plain; version=1.0.0)",
                        "headers": headers_of({"Cache-Control": True}),
                        "content": {_METRICS: {"schema": {"type": "string"}}},
                    },
                    "401": {
                        "description": "JWKS_METRICS_TOKEN is set, and the request does "
                        "not carry it as a bearer token",
                        "headers": headers_of({"WWW-Authenticate": True}),
                        "content": {PROBLEM: {"schema": ref("Problem")}},
                    },
                },
                security=[{"metricsToken": []}, {}],
            ),
        },
        "/openapi.json": {
            "get": operation(
                "getOpenApi",
                "This document",
                "Documentation",
                {"200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {}}}}},
            ),
        },
    }


def issuer_paths(base: str, realm: bool) -> dict[str, dict[str, Operation]]:
    """The OAuth endpoints under one issuer: the default realm's, or ``/realms/{realm}``'s."""
    sfx = "ForRealm" if realm else ""
    params = [param("Realm")] if realm else []
    # Only a named realm can be unknown, or missing from the cache while the store is
    # away; the default realm's ring and metadata are always in memory.
    unknown = (404,) if realm else ()
    uncached = (503,) if realm else ()

    def metadata(op_id: str, summary: str) -> dict[str, Operation]:
        responses = {
            "200": ok("The metadata", "ServerMetadata", headers=NO_CACHE_HEADER),
            **oauth_errors(*unknown, *uncached),
        }
        return {"get": operation(op_id + sfx, summary, "OAuth", responses, parameters=params)}

    well_known = "/.well-known/oauth-authorization-server" + ("/realms/{realm}" if realm else "")
    return {
        f"{base}/oauth/token": {
            "post": operation(
                f"requestToken{sfx}",
                "client_credentials (RFC 6749 §4.4): a JWT access token (RFC 9068 or Jitsi)",
                "OAuth",
                {
                    "200": ok("The token", "TokenResponse", headers=NO_CACHE_HEADER),
                    **oauth_errors(400, 401, *unknown, 413, 429, 500, 503),
                },
                parameters=params,
                security=CLIENT,
                requestBody=body("TokenRequest", FORM),
            )
        },
        f"{base}/oauth/introspect": {
            "post": operation(
                f"introspectToken{sfx}",
                "Token introspection (RFC 7662), by a client of the realm or an admin key",
                "OAuth",
                {
                    "200": ok(
                        "{active: false} for every token that does not verify",
                        "IntrospectionResponse",
                        headers=NO_CACHE_HEADER,
                    ),
                    **oauth_errors(400, 401, *unknown, 413, 429, 503),
                },
                parameters=params,
                security=[*CLIENT[:1], *ADMIN, {}],
                requestBody=body("IntrospectionRequest", FORM),
            )
        },
        f"{base}/oauth/register": {
            "post": operation(
                f"registerClient{sfx}",
                "Client registration (RFC 7591); the initial access token is an admin key",
                "OAuth",
                {
                    "201": ok(
                        "The client, with its client_secret (once) for the secret methods",
                        "Client",
                        headers=NO_CACHE_HEADER,
                    ),
                    **oauth_errors(400, 401, 404, 413, 429, 503),
                },
                parameters=params,
                security=ADMIN,
                requestBody=body("ClientMetadata"),
            )
        },
        f"{base}/.well-known/openid-configuration": metadata(
            "getOpenIdConfiguration", "OpenID discovery: the same metadata as RFC 8414's"
        ),
        well_known: metadata("getServerMetadata", "Authorization server metadata (RFC 8414)"),
        f"{base}/asap/{{digest}}.pem": {
            "get": operation(
                f"getAsapKey{sfx}",
                "One public key as PEM, for Jitsi prosody's asap_key_server",
                "OAuth",
                {
                    "200": ok(
                        "SubjectPublicKeyInfo PEM",
                        "Pem",
                        _PEM,
                        headers=NO_CACHE_HEADER,
                    ),
                    **oauth_errors(404, *uncached),
                },
                parameters=[
                    *params,
                    path_param(
                        "digest",
                        {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                        None,
                        "sha256 hex of the key's kid",
                    ),
                ],
            )
        },
    }
