"""Token introspection (RFC 7662): is this token, signed by a key of the realm, valid now?

Every failure is the same answer, ``{"active": false}`` (RFC 7662 §2.2): the
caller learns nothing about why. A token this server issued names its client
(``client_id``), and is active only while that client exists: deleting a client
ends its tokens here at once, in every replica, as the client cache drops it.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from service import crypto, metrics
from service.clock import Clock
from service.keys import TokenSigner
from service.oauth.clients import ClientRegistry

__all__ = ["Introspector"]

log = logging.getLogger(__name__)

INACTIVE: Final = {"active": False}


class Introspector:
    """Verifies tokens against a realm's keys: server keys and uploaded verify_only keys."""

    def __init__(self, signer: TokenSigner, clients: ClientRegistry, clock: Clock) -> None:
        self._signer = signer
        self._clients = clients
        self._clock = clock

    async def introspect(self, realm: str, issuer: str, token: str) -> dict[str, Any]:
        """The RFC 7662 §2.2 response for ``token``.

        :raises Unavailable: the token's client is not cached and the store does not
            answer (it fails closed: it never says active for a client it cannot see).
        """
        try:
            claims, key = await self._signer.verify(realm, token)
            # Tokens this server signed must name this realm as issuer; tenants'
            # own tokens (uploaded keys, which have no secret here) are checked
            # against what the tenant declared at upload, if anything.
            uploaded = key.sealed_secret is None
            crypto.check_claims(
                claims,
                now=self._clock.now(),
                required=("exp",),
                iss=key.expected_issuer if uploaded else issuer,
                audience=[key.expected_audience] if key.expected_audience else None,
            )
        except (crypto.InvalidToken, crypto.InvalidKey) as exc:
            log.info("introspection: inactive token (%s)", exc.detail)
            metrics.introspected(False, "invalid")
            return dict(INACTIVE)
        if not uploaded and "client_id" in claims and not await self._client_exists(realm, claims):
            log.info("introspection: inactive token (its client was deleted)")
            metrics.introspected(False, "client_deleted")
            return dict(INACTIVE)
        metrics.introspected(True, "valid")
        return {**claims, "active": True, "kid": key.kid, "token_type": "Bearer"}

    async def _client_exists(self, realm: str, claims: dict[str, Any]) -> bool:
        # From the client cache: no store round trip once the client is cached, and a
        # deletion drops it in every replica (change message, or the version check).
        # Tokens without client_id (Jitsi meeting tokens, or tokens a tenant signs
        # with its HS256 secret) name no client of ours to check.
        client_id = claims["client_id"]
        return isinstance(client_id, str) and await self._clients.find(realm, client_id) is not None
