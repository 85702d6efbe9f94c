"""The JSON Schemas (2020-12) of the OpenAPI document: every body the API takes or gives.

Request schemas say what the endpoints enforce and no more: members the service
ignores (RFC 6749 §3.2, RFC 7591 §2) are allowed, and members it refuses are not.
The closed sets come from :mod:`service.models`, so that a new algorithm or
method cannot be served without being documented.
"""

from __future__ import annotations

from typing import Any, Final

from service.audit import EVENT_TYPES
from service.models import ALGOS, AUTH_METHODS, JWS_ALG, TOKEN_PROFILES, KeyStatus
from service.oauth.client_auth import ASSERTION_TYPE
from service.oauth.discovery import ASSERTION_SIGNING_ALGS

__all__ = ["OAUTH_ERRORS", "REALM_PATTERN", "schemas"]

Schema = dict[str, Any]

#: ``service.models.REALM_NAME``, anchored as JSON Schema patterns are not.
REALM_PATTERN: Final = "^[a-z0-9-]{1,64}$"
#: Every ``error`` code the OAuth endpoints answer (RFC 6749 §5.2, RFC 6750 §3,
#: RFC 7591 §3.2.2, RFC 8707 §2).
OAUTH_ERRORS: Final = (
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "invalid_client_metadata",
    "invalid_token",
    "insufficient_scope",
    "server_error",
    "temporarily_unavailable",
)
_STATUSES: Final[tuple[KeyStatus, ...]] = ("next", "active", "expired", "verify_only")
_KID: Final = "^[!-~]{1,128}$"  # printable ASCII, as service.keys.requests checks


def ref(name: str) -> Schema:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def _string(description: str | None = None, **constraints: Any) -> Schema:
    schema: Schema = {"type": "string", **constraints}
    if description:
        schema["description"] = description
    return schema


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _strings(description: str, item: Schema | None = None, max_items: int = 100) -> Schema:
    return {
        "type": "array",
        "items": item or {"type": "string"},
        "maxItems": max_items,
        "description": description,
    }


def _page(item: str) -> Schema:
    return {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": ref(item)},
            "next_cursor": _nullable(
                _string("Pass as ?cursor= for the next page; null at the end")
            ),
        },
        "additionalProperties": False,
    }


def _object(properties: Schema, required: tuple[str, ...] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


_JWK: Final = _object(
    {
        name: _string()
        for name in ("kty", "kid", "alg", "use", "crv", "n", "e", "x", "y", "x5t", "x5t#S256")
    },
    ("kty",),
    description="A public JWK (RFC 7517 §4)",
)

_TOKEN_AUTH: Final[Schema] = {
    "client_id": _string("client_secret_post; else optional, and then it must match"),
    "client_secret": _string("client_secret_post"),
    "client_assertion_type": _string("private_key_jwt (RFC 7523 §2.2)", enum=[ASSERTION_TYPE]),
    "client_assertion": _string("private_key_jwt: a JWT signed with one of the client's keys"),
}

_TOKEN_REQUEST: Final = _object(
    {
        "grant_type": _string(enum=["client_credentials"]),
        **_TOKEN_AUTH,
        "scope": _string("Space-separated; a subset of the client's scope"),
        "audience": _string("The token's aud: the client's default, or one of allowed_audiences"),
        "resource": _string("RFC 8707 resource indicator: an absolute URI (not with audience)"),
        "room": _string("One of the client's allowed_rooms (required for jitsi)", maxLength=256),
        "tenant": _string("jitsi: the token's sub, one of allowed_tenants"),
        **{
            f"user_{name}": _string(f"jitsi: context.user.{name}", maxLength=256)
            for name in ("id", "name", "email", "avatar")
        },
        "moderator": _string("jitsi: true or false (also 1, 0; any case)"),
    },
    ("grant_type",),
    patternProperties={"^features\\.": _string("jitsi: features.NAME=true|false")},
    additionalProperties=_string("Other parameters are ignored (RFC 6749 §3.2)"),
)

_INTROSPECTION_REQUEST: Final = _object(
    {"token": _string(), "token_type_hint": _string(), **_TOKEN_AUTH},
    ("token",),
    additionalProperties=_string(),
)

_CLIENT_FIELDS: Final[Schema] = {
    "client_name": _string(minLength=1, maxLength=256),
    "token_endpoint_auth_method": _string(enum=list(AUTH_METHODS)),
    "grant_types": _strings("Only client_credentials", _string(enum=["client_credentials"])),
    "scope": _string("Space-separated scope tokens (RFC 6749 §3.3)", minLength=1, maxLength=256),
    "jwks": ref("Jwks"),
    "allowed_rooms": _strings("Room patterns; * and ? glob"),
    "token_profile": _string(enum=list(TOKEN_PROFILES)),
    "jitsi_app_id": _string("Required with token_profile jitsi", minLength=1, maxLength=256),
    "allowed_features": _strings("Jitsi features the client may grant"),
    "default_audience": _string(minLength=1, maxLength=256),
    "allowed_audiences": _strings("Exact audiences the client may ask for"),
    "allowed_tenants": _strings("jitsi: tenants (sub) the client may ask for; * when listed"),
    "access_token_signed_response_alg": _string(enum=list(JWS_ALG.values())),
}

_CLIENT_METADATA: Final = _object(
    {
        **_CLIENT_FIELDS,
        # null is the same as absent for these (and only these) members.
        **{
            name: _nullable(_CLIENT_FIELDS[name])
            for name in ("client_name", "scope", "jitsi_app_id", "default_audience")
        },
        "response_types": _strings("Empty or absent: no authorization endpoint", max_items=0),
        "redirect_uris": _strings("Empty or absent: no authorization endpoint", max_items=0),
    },
    description="RFC 7591 §2 client metadata; members the service does not know are ignored",
)

_CLIENT: Final = _object(
    {
        "client_id": _string(),
        "client_id_issued_at": {"type": "integer"},
        **_CLIENT_FIELDS,
        "client_secret": _string("Secret methods only, in the 201 only"),
        "client_secret_expires_at": {"type": "integer", "const": 0},
    },
    (
        "client_id",
        "client_id_issued_at",
        "token_endpoint_auth_method",
        "grant_types",
        "allowed_rooms",
        "token_profile",
        "allowed_features",
        "allowed_audiences",
        "access_token_signed_response_alg",
    ),
    additionalProperties=False,
)

_KEY: Final = _object(
    {
        "id": _string(),
        "kid": _string(),
        "algo": _string(enum=list(ALGOS)),
        "use": _string(enum=["sign"]),
        "name": _nullable(_string()),
        "status": _string(enum=list(_STATUSES)),
        "expired": {"type": "boolean"},
        "public_jwk": _nullable(ref("Jwk")),
        "created_at": _string(format="date-time"),
        "expires_at": _nullable(_string(format="date-time")),
        "expected_issuer": _nullable(_string("verify_only keys")),
        "expected_audience": _nullable(_string("verify_only keys")),
        "key": _string("hs256: the secret, on creation or rotation only"),
    },
    (
        "id",
        "kid",
        "algo",
        "use",
        "name",
        "status",
        "expired",
        "public_jwk",
        "created_at",
        "expires_at",
    ),
    additionalProperties=False,
)

_NAME: Final = _string(minLength=1, maxLength=50)
_USE: Final = _string(enum=["sign"])


def _key_request() -> Schema:
    # The three forms of service.keys.requests, mutually exclusive by key/public_key.
    # null is the same as absent for the optional members.
    name, kid = _nullable(_NAME), _nullable(_string(pattern=_KID))
    generate = _object(
        {"algo": _string(enum=list(ALGOS)), "name": name, "use": _USE},
        ("algo",),
        title="Generate",
        additionalProperties=False,
    )
    secret = _object(
        {
            "algo": _string(const="hs256"),
            "key": _string("At least 32 bytes of UTF-8", minLength=32),
            "name": name,
            "kid": kid,
            "use": _USE,
        },
        ("algo", "key"),
        title="ImportSecret",
        additionalProperties=False,
    )
    upload = _object(
        {
            "public_key": {
                "anyOf": [_string("PEM, OpenSSH line, certificate or JWK JSON"), ref("Jwk")]
            },
            "algo": _nullable(_string(enum=[a for a in ALGOS if a != "hs256"])),
            "name": name,
            "kid": kid,
            "use": _USE,
            "expected_issuer": _nullable(_string(minLength=1, maxLength=256)),
            "expected_audience": _nullable(_string(minLength=1, maxLength=256)),
        },
        ("public_key",),
        title="UploadPublicKey",
        additionalProperties=False,
    )
    return {"oneOf": [generate, secret, upload]}


def schemas() -> dict[str, Schema]:
    """The ``components.schemas`` of the document."""
    return {
        "Jwk": _JWK,
        "Jwks": _object(
            {"keys": {"type": "array", "items": ref("Jwk")}}, ("keys",), description="RFC 7517 §5"
        ),
        "ServerMetadata": _object(
            {
                "issuer": _string(),
                "jwks_uri": _string(),
                "token_endpoint": _string(),
                "introspection_endpoint": _string(),
                "registration_endpoint": _string(),
                "grant_types_supported": _strings("", _string()),
                "response_types_supported": _strings("", _string()),
                "token_endpoint_auth_methods_supported": _strings("", _string()),
                "token_endpoint_auth_signing_alg_values_supported": _strings(
                    f"One of {', '.join(ASSERTION_SIGNING_ALGS)}", _string()
                ),
                "introspection_endpoint_auth_methods_supported": _strings("", _string()),
                "scopes_supported": _strings("", _string()),
            },
            ("issuer", "jwks_uri", "token_endpoint", "grant_types_supported"),
            description="RFC 8414 §2",
        ),
        "TokenRequest": _TOKEN_REQUEST,
        "TokenResponse": _object(
            {
                "access_token": _string(),
                "token_type": _string(const="Bearer"),
                "expires_in": {"type": "integer", "minimum": 1},
                "scope": _string(),
            },
            ("access_token", "token_type", "expires_in"),
            additionalProperties=False,
        ),
        "IntrospectionRequest": _INTROSPECTION_REQUEST,
        "IntrospectionResponse": _object(
            {"active": {"type": "boolean"}, "kid": _string(), "token_type": _string()},
            ("active",),
            description="RFC 7662 §2.2; an active token's claims are included as they are",
        ),
        "ClientMetadata": _CLIENT_METADATA,
        "Client": _CLIENT,
        "ClientPage": _page("Client"),
        "ClientJwks": _object(
            {"keys": {"type": "array", "items": ref("Jwk"), "minItems": 1}}, ("keys",)
        ),
        "OAuthError": _object(
            {"error": _string(enum=list(OAUTH_ERRORS)), "error_description": _string()},
            ("error",),
            description="RFC 6749 §5.2",
            additionalProperties=False,
        ),
        "Problem": _object(
            {
                "type": _string(),
                "title": _string(),
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": _string(),
                "field": _string("The request member at fault"),
            },
            ("type", "title", "status"),
            description="RFC 9457 §3",
            additionalProperties=False,
        ),
        "Realm": _object(
            {
                "name": _string(pattern=REALM_PATTERN),
                "created_at": _string(format="date-time"),
                "rotation_interval": _nullable({"type": "integer", "minimum": 0}),
                "jwks_uri": _string(),
            },
            ("name", "created_at", "rotation_interval", "jwks_uri"),
            additionalProperties=False,
        ),
        "RealmPage": _page("Realm"),
        "NewRealm": _object({"name": _string(pattern=REALM_PATTERN)}, ("name",)),
        "RealmSettings": _object(
            {
                "rotation_interval": _nullable(
                    {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 10 * 365 * 86_400,
                        "description": "Seconds: 0 = off, else over JWKS_JWKS_MAX_AGE + 5; "
                        "null = JWKS_ROTATION_INTERVAL",
                    }
                )
            },
            additionalProperties=False,
        ),
        "Key": _KEY,
        "KeyPage": _page("Key"),
        "KeyRequest": _key_request(),
        "RotateRequest": _object(
            {
                "algo": _string(enum=list(ALGOS), default="rs256"),
                "immediate": {"type": "boolean", "default": False},
            }
        ),
        "Event": _object(
            {
                "id": _string(),
                "type": _string(enum=list(EVENT_TYPES)),
                "realm": _nullable(_string("null: outside every realm (a global admin key)")),
                "actor": _string("The admin key's id, or system, cli, scheduler"),
                "address": _nullable(_string("The client address of the request")),
                "at": _string(format="date-time"),
                "subject": _nullable(_string("The key id, client_id or admin key id")),
                "details": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "integer", "boolean", "null"]},
                },
            },
            ("id", "type", "realm", "actor", "address", "at", "subject", "details"),
            description="An audit event; never a secret",
            additionalProperties=False,
        ),
        "EventPage": _page("Event"),
        "Pem": _string("A public key, SubjectPublicKeyInfo PEM"),
        "Health": _object({"status": _string(enum=["ok", "ready"])}, ("status",)),
        "Readiness": _object(
            {
                "status": _string(enum=["ready", "unready"]),
                "store": _string(
                    "up; down (an error); slow (no PING answer within 0.5 s)",
                    enum=["up", "down", "slow"],
                ),
                "reasons": _strings("Why the process is unready; empty when ready"),
                "cache_age_s": {
                    "type": "number",
                    "minimum": 0,
                    "description": "Seconds since the caches were last checked against the store",
                },
            },
            ("status", "store", "reasons", "cache_age_s"),
            additionalProperties=False,
        ),
    }
