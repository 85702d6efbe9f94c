"""Client metadata (RFC 7591 §2) validated into a ``Client``, and client secrets."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import Any, Final

from service import crypto
from service.models import (
    AUTH_METHODS,
    JWS_ALG,
    TOKEN_PROFILES,
    Algo,
    AuthMethod,
    Client,
    TokenProfile,
)
from service.oauth.errors import InvalidClientMetadata

__all__ = ["UNDERSTOOD_METADATA", "hash_secret", "new_client", "parse_jwks"]

#: RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
#: Room patterns: Jitsi room names plus the glob characters * and ?.
_ROOM_PATTERN: Final = re.compile(r"[A-Za-z0-9_.@*?-]{1,128}")
_FEATURE: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: An audience: visible ASCII, no spaces (a URI, RFC 8707 §2, or a plain name).
_AUDIENCE: Final = re.compile(r"[\x21-\x7e]{1,256}")
#: A Jitsi tenant (the token's sub): a path segment of the meeting URL, or "*".
_TENANT: Final = re.compile(r"[A-Za-z0-9_.-]{1,128}|\*")
#: The client metadata this service understands; new_client ignores all other members.
UNDERSTOOD_METADATA: Final = frozenset(
    {
        "client_name",
        "token_endpoint_auth_method",
        "jwks",
        "grant_types",
        "scope",
        "allowed_rooms",
        "token_profile",
        "jitsi_app_id",
        "allowed_features",
        "default_audience",
        "allowed_audiences",
        "allowed_tenants",
        "access_token_signed_response_alg",
        "response_types",
        "redirect_uris",
    }
)


def hash_secret(secret: str) -> str:
    """The stored form of a client secret: SHA-256, since the secret is 256 random bits."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_jwks(value: object) -> tuple[Mapping[str, Any], ...]:
    """A client's ``jwks`` (public keys only, kids unique)."""
    try:
        return crypto.parse_client_jwks(value)
    except crypto.InvalidKey as exc:
        raise InvalidClientMetadata(exc.detail) from exc


def new_client(metadata: Mapping[str, Any], *, now: float) -> tuple[Client, str | None]:
    """Validate registration metadata; return the client and its secret (secret methods).

    RFC 7591 §2: "The authorization server MUST ignore any client metadata sent by
    the client that it does not understand". Registration tools and SDKs send
    ``contacts``, ``logo_uri``, ``client_uri``, ``software_id`` and the like; they
    are dropped, neither stored nor returned, so the §3.2.1 response shows the
    client what was registered. A field listed in ``UNDERSTOOD_METADATA`` with a bad value is
    still refused.

    :raises InvalidClientMetadata: naming the first bad field.
    """
    # Dropped first, so that nothing below can read, store or echo them.
    metadata = {name: value for name, value in metadata.items() if name in UNDERSTOOD_METADATA}
    method = _auth_method(metadata.get("token_endpoint_auth_method", "client_secret_basic"))
    jwks: tuple[Mapping[str, Any], ...] = ()
    if "jwks" in metadata:
        jwks = parse_jwks(metadata["jwks"])
    if method == "private_key_jwt" and not jwks:
        raise InvalidClientMetadata("jwks: private_key_jwt needs the client's public keys")
    grant_types = _strings(metadata, "grant_types", ["client_credentials"])
    if grant_types != ("client_credentials",):
        raise InvalidClientMetadata('grant_types: only ["client_credentials"] is supported')
    if metadata.get("response_types", []) != []:
        raise InvalidClientMetadata("response_types: there is no authorization endpoint")
    # Understood, so not ignored: a client that expects redirects must learn that
    # there will be none. The empty list that registration tools send is fine.
    if metadata.get("redirect_uris", []) != []:
        raise InvalidClientMetadata("redirect_uris: there is no authorization endpoint")
    scope = _optional_string(metadata, "scope")
    if scope is not None and not all(_SCOPE_TOKEN.fullmatch(t) for t in scope.split()):
        raise InvalidClientMetadata("scope: space-separated scope tokens (RFC 6749 §3.3)")
    rooms = _strings(metadata, "allowed_rooms", [])
    if not all(_ROOM_PATTERN.fullmatch(r) for r in rooms):
        raise InvalidClientMetadata("allowed_rooms: patterns of letters, digits, _.@- and * ?")
    features = _strings(metadata, "allowed_features", [])
    if not all(_FEATURE.fullmatch(f) for f in features):
        raise InvalidClientMetadata("allowed_features: names of letters, digits and _.-")
    profile = _profile(metadata.get("token_profile", "rfc9068"))
    app_id = _optional_string(metadata, "jitsi_app_id")
    if profile == "jitsi" and not app_id:
        raise InvalidClientMetadata("jitsi_app_id: required with token_profile jitsi")
    audiences = _strings(metadata, "allowed_audiences", [])
    if not all(_AUDIENCE.fullmatch(a) for a in audiences):
        raise InvalidClientMetadata("allowed_audiences: URIs or names of visible ASCII, no spaces")
    tenants = _strings(metadata, "allowed_tenants", [])
    if tenants and profile != "jitsi":
        raise InvalidClientMetadata("allowed_tenants: only with token_profile jitsi")
    if not all(_TENANT.fullmatch(t) for t in tenants):
        raise InvalidClientMetadata("allowed_tenants: names of letters, digits and _.-, or *")
    secret = None if method == "private_key_jwt" else "jcs_" + secrets.token_urlsafe(32)
    client = Client(
        client_id="jcl_" + secrets.token_urlsafe(16),
        client_id_issued_at=float(int(now)),
        token_endpoint_auth_method=method,
        client_name=_optional_string(metadata, "client_name"),
        grant_types=grant_types,
        scope=" ".join(scope.split()) if scope else None,
        jwks=jwks,
        client_secret_hash=hash_secret(secret) if secret else None,
        allowed_rooms=rooms,
        token_profile=profile,
        jitsi_app_id=app_id,
        allowed_features=features,
        default_audience=_optional_string(metadata, "default_audience"),
        access_token_algo=_access_token_algo(metadata, profile),
        allowed_audiences=tuple(dict.fromkeys(audiences)),
        allowed_tenants=tuple(dict.fromkeys(tenants)),
    )
    return client, secret


def _access_token_algo(metadata: Mapping[str, Any], profile: TokenProfile) -> Algo:
    # Named like OIDC's *_signed_response_alg metadata. Jitsi's verifier pins RS256.
    value = metadata.get("access_token_signed_response_alg", "RS256")
    algo = next((a for a, jws_alg in JWS_ALG.items() if jws_alg == value), None)
    if algo is None or (profile == "jitsi" and algo != "rs256"):
        allowed = "RS256" if profile == "jitsi" else ", ".join(JWS_ALG.values())
        raise InvalidClientMetadata(f"access_token_signed_response_alg: one of {allowed}")
    return algo


def _auth_method(value: object) -> AuthMethod:
    for method in AUTH_METHODS:
        if value == method:
            return method
    raise InvalidClientMetadata("token_endpoint_auth_method: one of " + ", ".join(AUTH_METHODS))


def _profile(value: object) -> TokenProfile:
    for profile in TOKEN_PROFILES:
        if value == profile:
            return profile
    raise InvalidClientMetadata("token_profile: rfc9068 or jitsi")


def _optional_string(metadata: Mapping[str, Any], name: str) -> str | None:
    value = metadata.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 256:
        raise InvalidClientMetadata(f"{name}: a string of 1-256 characters")
    return value


def _strings(metadata: Mapping[str, Any], name: str, default: list[str]) -> tuple[str, ...]:
    value = metadata.get(name, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidClientMetadata(f"{name}: an array of strings")
    if len(value) > 100:
        raise InvalidClientMetadata(f"{name}: at most 100 entries")
    return tuple(value)
