"""The client_credentials grant (RFC 6749 §4.4): access tokens in two profiles.

- ``rfc9068``: a JWT access token (RFC 9068): typ ``at+jwt``; iss, sub, client_id,
  aud, iat, exp, jti, and scope and room when asked for.
- ``jitsi``: a meeting token that Jitsi Meet's prosody token plugin accepts as is:
  typ ``JWT``, RS256, aud ``"jitsi"`` as a string, iss = the client's
  jitsi_app_id, sub = tenant, client_id, room, nbf 10 s back (prosody allows no
  skew), and a ``context`` with the user and features.
"""

from __future__ import annotations

import fnmatch
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from service import metrics
from service.clock import Clock
from service.keys import TokenSigner
from service.models import Client
from service.oauth.errors import (
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    UnauthorizedClient,
)

__all__ = ["ClientCredentialsGrant", "TokenResponse"]

_JITSI_NBF_SKEW: Final = 10
#: The longest value copied from a request into a token, so that every token this
#: server issues stays far under the size it accepts back (crypto.MAX_TOKEN_BYTES).
_MAX_VALUE: Final = 256
_USER_FIELDS: Final = ("user_id", "user_name", "user_email", "user_avatar")
_BOOLEAN: Final = {"true": "true", "false": "false", "1": "true", "0": "false"}


@dataclass(frozen=True)
class TokenResponse:
    """A successful token response (RFC 6749 §5.1)."""

    access_token: str
    expires_in: int
    scope: str | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON body."""
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if self.scope:
            body["scope"] = self.scope
        return body


class ClientCredentialsGrant:
    """Issues tokens for authenticated clients."""

    def __init__(self, signer: TokenSigner, clock: Clock, token_ttl: int) -> None:
        self._signer = signer
        self._clock = clock
        self._ttl = token_ttl

    async def issue(
        self, realm: str, issuer: str, client: Client, form: Mapping[str, str]
    ) -> TokenResponse:
        """Check the request against the client's registration, then sign a token.

        :raises UnauthorizedClient, InvalidScope, InvalidTarget, InvalidRequest:
        """
        if "client_credentials" not in client.grant_types:
            raise UnauthorizedClient("the client may not use client_credentials")
        scope = _scope(client, form.get("scope"))
        room = _room(client, form.get("room"))
        now = int(self._clock.now())
        if client.token_profile == "jitsi":
            claims = _jitsi_claims(realm, client, form, room, now, self._ttl)
            token = await self._signer.sign(realm, claims, typ="JWT")
        else:
            claims = {
                "iss": issuer,
                "sub": client.client_id,
                "client_id": client.client_id,
                "aud": _audience(client, form, issuer),
                "iat": now,
                "exp": now + self._ttl,
                "jti": secrets.token_urlsafe(16),
            }
            if scope:
                claims["scope"] = scope
            if room:
                claims["room"] = room
            token = await self._signer.sign(
                realm, claims, typ="at+jwt", algo=client.access_token_algo
            )
        metrics.token_issued(realm, client.token_endpoint_auth_method, client.token_profile)
        return TokenResponse(token, self._ttl, scope)


def _scope(client: Client, requested: str | None) -> str | None:
    if requested is None:
        return None
    wanted = requested.split()
    outside = sorted(set(wanted) - client.scopes)
    if outside:
        raise InvalidScope(f"scope {outside[0]!r} is not registered for this client")
    return " ".join(dict.fromkeys(wanted)) or None


def _room(client: Client, room: str | None) -> str | None:
    if room is None:
        return None
    if len(room) > _MAX_VALUE:
        raise InvalidRequest(f"room: at most {_MAX_VALUE} characters")
    if room == "*":
        allowed = "*" in client.allowed_rooms
    else:
        allowed = any(fnmatch.fnmatchcase(room, p) for p in client.allowed_rooms)
    if not room or not allowed:
        raise InvalidTarget("room is not one of the client's allowed_rooms")
    return room


def _audience(client: Client, form: Mapping[str, str], issuer: str) -> str:
    """The token's ``aud``: the client's default, or one it asked for and may have.

    Least privilege: a client gets a token for an audience only when it was
    registered for it (``allowed_audiences``, exact values, RFC 8707 §2:
    "invalid_target" otherwise), so that a token leaked from one API is not
    accepted by another.
    """
    default = client.default_audience or issuer
    if "audience" in form and "resource" in form:
        raise InvalidRequest("send audience or resource, not both")
    resource = form.get("resource")
    if resource is not None:
        try:
            parts = urlsplit(resource)
        except ValueError as exc:  # an unclosed IPv6 literal, a bad port
            raise InvalidTarget("resource is not a valid URI") from exc
        if not parts.scheme or parts.fragment:  # RFC 8707 §2
            raise InvalidTarget("resource must be an absolute URI without a fragment")
        requested = resource
    else:
        audience = form.get("audience")
        if audience is None:
            return default
        if not audience:
            raise InvalidTarget("audience must not be empty")
        requested = audience
    if requested != default and requested not in client.allowed_audiences:
        raise InvalidTarget("the audience is not one of the client's allowed_audiences")
    return requested


def _jitsi_claims(
    realm: str, client: Client, form: Mapping[str, str], room: str | None, now: int, ttl: int
) -> dict[str, Any]:
    if room is None:
        raise InvalidRequest("room is required for a Jitsi meeting token")
    user: dict[str, str] = {
        name.removeprefix("user_"): form[name] for name in _USER_FIELDS if form.get(name)
    }
    for name, value in user.items():
        if len(value) > _MAX_VALUE:
            raise InvalidRequest(f"user_{name}: at most {_MAX_VALUE} characters")
    moderator = form.get("moderator", "false").lower()
    if moderator not in _BOOLEAN:
        raise InvalidRequest("moderator must be true or false")
    user["moderator"] = _BOOLEAN[moderator]
    features: dict[str, str] = {}
    for name, value in form.items():
        if not name.startswith("features."):
            continue
        feature = name.removeprefix("features.")
        if feature not in client.allowed_features:
            raise InvalidRequest(f"feature {feature!r} is not in the client's allowed_features")
        if value.lower() not in _BOOLEAN:
            raise InvalidRequest(f"features.{feature} must be true or false")
        features[feature] = _BOOLEAN[value.lower()]
    return {
        "aud": "jitsi",
        "iss": client.jitsi_app_id,
        "sub": _tenant(client, form.get("tenant"), realm),
        # Prosody ignores it; introspection needs it, to end the client's tokens
        # when the client is deleted.
        "client_id": client.client_id,
        "room": room,
        "iat": now,
        "nbf": now - _JITSI_NBF_SKEW,
        "exp": now + ttl,
        "context": {"user": user, "features": features},
    }


def _tenant(client: Client, requested: str | None, realm: str) -> str:
    # A meeting token for tenant "*" opens every tenant's rooms: only a client
    # registered for it gets one. Without allowed_tenants, the realm's name only.
    tenant = requested or realm
    allowed = client.allowed_tenants or (realm,)
    if tenant not in allowed:
        raise InvalidRequest("tenant is not one of the client's allowed_tenants")
    return tenant
