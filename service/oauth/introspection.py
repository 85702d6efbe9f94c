"""Token introspection (RFC 7662): is this token, signed by a key of the realm, valid now?

Every failure is the same answer, ``{"active": false}`` (RFC 7662 §2.2): the
caller learns nothing about why.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from service import crypto
from service.clock import Clock
from service.keys import TokenSigner

__all__ = ["Introspector"]

log = logging.getLogger(__name__)

INACTIVE: Final = {"active": False}


class Introspector:
    """Verifies tokens against a realm's keys: server keys and uploaded verify_only keys."""

    def __init__(self, signer: TokenSigner, clock: Clock) -> None:
        self._signer = signer
        self._clock = clock

    async def introspect(self, realm: str, issuer: str, token: str) -> dict[str, Any]:
        """The RFC 7662 §2.2 response for ``token``."""
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
            return dict(INACTIVE)
        return {**claims, "active": True, "kid": key.kid, "token_type": "Bearer"}
