"""Signing and verifying tokens with a realm's keys, from the in-process key ring.

Neither touches the store on the hot path: the ring comes from the manager's
cache, and a key's sealed secret is opened once and then kept in process.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Final

from service import crypto
from service.clock import Clock
from service.keys.errors import KeyNotFound, NoSigningKey
from service.keys.manager import KeyManager
from service.models import JWS_ALG, Algo, KeyRecord

__all__ = ["TokenSigner"]

#: Opened secrets kept at most; far more than any set of live keys.
_MAX_OPENED: Final = 1024


class TokenSigner:
    """Signs with a realm's active key; verifies with whichever key a token's kid names."""

    def __init__(self, keys: KeyManager, sealer: crypto.Sealer, clock: Clock) -> None:
        self._keys = keys
        self._sealer = sealer
        self._clock = clock
        # key id -> opened secret of keys used recently (decrypt once, not per token)
        self._opened: dict[str, str] = {}

    async def public_pem(self, realm: str, kid_sha256: str) -> str:
        """The SubjectPublicKeyInfo PEM of the published key whose kid hashes to ``kid_sha256``.

        This is how Jitsi's ``asap_key_server`` looks keys up: ``hex(sha256(kid)).pem``.

        :raises RealmNotFound:
        :raises KeyNotFound:
        """
        for key in (await self._keys.ring(realm)).verifying(self._clock.now()):
            digest = hashlib.sha256(key.kid.encode()).hexdigest()
            if key.public_jwk is not None and hmac.compare_digest(digest, kid_sha256.lower()):
                return crypto.jwk_to_pem(key.public_jwk)
        raise KeyNotFound(kid_sha256)

    async def verify(self, realm: str, token: str) -> tuple[dict[str, Any], KeyRecord]:
        """Check a token's signature with the realm key its kid names.

        The algorithm is pinned to the stored key (``JWS_ALG[key.algo]``), never
        taken from the token: an HS256 token can only verify against an hs256 key.
        Only keys that still verify at "now" count (not pruned, not force-deleted).

        :returns: the claims (not yet checked for time or issuer) and the key.
        :raises crypto.InvalidToken:
        :raises RealmNotFound:
        """
        kid = crypto.unverified_header(token).get("kid")
        ring = await self._keys.ring(realm)
        now = self._clock.now()
        key = next((k for k in ring.verifying(now) if k.kid == kid), None)
        if key is None or not isinstance(kid, str):
            raise crypto.InvalidToken("kid: no key of this realm has it")
        material: Mapping[str, Any] | str
        if key.public_jwk is not None:
            material = key.public_jwk
        elif key.sealed_secret is not None:
            material = self._open(realm, key)
        else:  # pragma: no cover - every stored key has one or the other
            raise crypto.InvalidToken("kid: the key cannot verify")
        return crypto.verify_jwt(token, material, [JWS_ALG[key.algo]]), key

    def _open(self, realm: str, key: KeyRecord) -> str:
        secret = self._opened.get(key.id)
        if secret is None:
            assert key.sealed_secret is not None
            secret = self._sealer.open(key.sealed_secret, f"{realm}/{key.id}".encode()).decode()
            if len(self._opened) > _MAX_OPENED:
                self._opened.clear()
            self._opened[key.id] = secret
        return secret

    async def sign(
        self, realm: str, claims: Mapping[str, Any], *, typ: str, algo: Algo = "rs256"
    ) -> str:
        """Sign ``claims`` with the realm's active key for ``algo``, from memory.

        The key's secret is opened once and kept in process while the key is active.

        :raises RealmNotFound:
        :raises NoSigningKey: the realm has no active key for ``algo``.
        """
        key = (await self._keys.ring(realm)).active(algo)
        if key is None or key.sealed_secret is None:
            raise NoSigningKey(f"realm {realm!r} has no active {algo} key")
        return crypto.sign_jwt(
            self._open(realm, key), key.algo, kid=key.kid, typ=typ, claims=claims
        )
