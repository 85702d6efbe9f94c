"""The admin API under /v1: realms, keys, clients and audit events."""

from __future__ import annotations

from typing import Any, Final

from service.http.openapi._parts import (
    ADMIN,
    Operation,
    body,
    ok,
    operation,
    param,
    problems,
)

__all__ = ["admin_paths"]


def _admin(
    op_id: str, summary: str, tag: str, responses: dict[str, Any], **extra: Any
) -> Operation:
    # Every admin call: a bearer admin key (401) within its rate limit (429), the store (503).
    responses = {**responses, **problems(401, 429, 503)}
    return operation(op_id, summary, tag, responses, security=ADMIN, **extra)


#: With a key file body, the upload's other fields (all optional) are query parameters.
_KEY_FILE_QUERY: Final = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"With a key file body only: the upload's {name}",
        "schema": {"type": "string"},
    }
    for name in ("kid", "name", "algo", "expected_issuer", "expected_audience")
]


def _key_request_body() -> dict[str, Any]:
    """A JSON key request, or the public key file itself (``curl --data-binary @k.pub``)."""
    request = body("KeyRequest")
    key_file = {
        "schema": {"type": "string", "description": "A public key: PEM, OpenSSH or certificate"}
    }
    # text/plain too, and form-urlencoded when the body starts with -----BEGIN (what
    # curl sends without -H); documented once, as the PEM media type.
    request["content"]["application/x-pem-file"] = key_file
    return request


def admin_paths() -> dict[str, dict[str, Operation]]:
    """Every /v1 operation."""
    realm, page = [param("Realm")], [param("Limit"), param("Cursor")]
    key = [*realm, param("KeyId")]
    client = [*realm, param("ClientId")]
    realms, keys, clients = "Admin: realms", "Admin: keys", "Admin: clients"
    events = "Admin: audit events"
    force = {
        "name": "force",
        "in": "query",
        "description": "true: remove the key now and take it out of the JWKS",
        "schema": {"type": "boolean", "default": False},
    }
    return {
        "/v1/realms": {
            "get": _admin(
                "listRealms",
                "Realms by name (a realm-scoped key sees its own)",
                realms,
                {"200": ok("A page of realms", "RealmPage"), **problems(400)},
                parameters=page,
            ),
            "post": _admin(
                "createRealm",
                "A realm, with its first RS256 key",
                realms,
                {"201": ok("The realm", "Realm"), **problems(400, 403, 409, 413)},
                requestBody=body("NewRealm"),
            ),
        },
        "/v1/realms/{realm}": {
            "get": _admin(
                "getRealm",
                "One realm",
                realms,
                {"200": ok("The realm", "Realm"), **problems(404)},
                parameters=realm,
            ),
            "patch": _admin(
                "configureRealm",
                "Set the realm's rotation interval",
                realms,
                {"200": ok("The realm", "Realm"), **problems(400, 404, 413)},
                parameters=realm,
                requestBody=body("RealmSettings"),
            ),
            "delete": _admin(
                "deleteRealm",
                "The realm, its keys, clients and realm-scoped admin keys (not default: 409)",
                realms,
                {"204": ok("Deleted"), **problems(404, 409)},
                parameters=realm,
            ),
        },
        "/v1/realms/{realm}/jwt_keys": {
            "get": _admin(
                "listKeys",
                "The realm's keys, newest first",
                keys,
                {"200": ok("A page of keys", "KeyPage"), **problems(400, 404)},
                parameters=[*realm, *page],
            ),
            "post": _admin(
                "createKey",
                "Generate a key, import an HS256 secret, or upload a public key (verify_only)",
                keys,
                {
                    "201": ok("The key (an hs256 secret once, as key)", "Key"),
                    **problems(400, 404, 409, 413),
                },
                parameters=[*realm, *_KEY_FILE_QUERY],
                requestBody=_key_request_body(),
            ),
        },
        "/v1/realms/{realm}/jwt_keys/rotate": {
            "post": _admin(
                "rotateKeys",
                "Promote the next key (409 + Retry-After until it is published long enough), "
                "or a new key at once with immediate",
                keys,
                {"200": ok("The new active key", "Key"), **problems(400, 404, 409, 413)},
                parameters=realm,
                requestBody=body("RotateRequest"),
            ),
        },
        "/v1/realms/{realm}/jwt_keys/{id}": {
            "get": _admin(
                "getKey",
                "One key",
                keys,
                {"200": ok("The key", "Key"), **problems(404)},
                parameters=key,
            ),
            "delete": _admin(
                "deleteKey",
                "Expire the key (it verifies through the grace), or remove it with force "
                "(the active hs256 key: 409, rotate first)",
                keys,
                {"202": ok("The key, expired", "Key"), **problems(400, 404, 409)},
                parameters=[*key, force],
            ),
        },
        "/v1/realms/{realm}/clients": {
            "get": _admin(
                "listClients",
                "The realm's clients, newest first",
                clients,
                {"200": ok("A page of clients", "ClientPage"), **problems(400, 404)},
                parameters=[*realm, *page],
            ),
        },
        "/v1/realms/{realm}/clients/{id}": {
            "get": _admin(
                "getClient",
                "One client",
                clients,
                {"200": ok("The client", "Client"), **problems(404)},
                parameters=client,
            ),
            "delete": _admin(
                "deleteClient",
                "The client; its tokens stop introspecting as active at once",
                clients,
                {"204": ok("Deleted"), **problems(404)},
                parameters=client,
            ),
        },
        "/v1/events": {
            "get": _admin(
                "listEvents",
                "The global audit events, newest first: realms created and deleted, global "
                "admin keys (a global admin key only)",
                events,
                {"200": ok("A page of events", "EventPage"), **problems(400, 403)},
                parameters=page,
            ),
        },
        "/v1/realms/{realm}/events": {
            "get": _admin(
                "listRealmEvents",
                "The realm's audit events, newest first",
                events,
                {"200": ok("A page of events", "EventPage"), **problems(400, 404)},
                parameters=[*realm, *page],
            ),
        },
        "/v1/realms/{realm}/clients/{id}/jwks": {
            "put": _admin(
                "replaceClientJwks",
                "Replace the client's public keys (key rollover)",
                clients,
                {"200": ok("The client", "Client"), **problems(400, 404, 413)},
                parameters=client,
                requestBody=body("ClientJwks"),
            ),
        },
    }
