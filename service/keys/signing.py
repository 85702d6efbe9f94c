"""Signing and verifying tokens with a realm's keys, from the prepared ring in memory.

Nothing here touches the store, opens a sealed secret or imports a key: the ring
cache did that once when the ring changed. What is left per token is the
signature itself. RSA signatures (0.3 ms at 2048 bits, 1.5-2 ms at 4096) leave the
event loop for a thread, where OpenSSL signs without the GIL, so they never stall
the requests behind them: signed in place, every token in flight delays a JWKS
(or health check) answer. On one saturated core the hand-off costs a few percent
of the token throughput (bench/RESULTS.md has both sides). ES256, EdDSA and HS256
sign in place: they cost less than the hand-off.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any, Final

from service import crypto
from service.clock import Clock
from service.keys._threads import signing_pool
from service.keys.errors import KeyNotFound, NoSigningKey
from service.keys.manager import KeyManager
from service.models import Algo, KeyRecord

__all__ = ["OFFLOAD_RSA_BITS", "TokenSigner"]

#: RSA keys of at least this size sign in a thread (see the module docstring).
OFFLOAD_RSA_BITS: Final = 2048


class TokenSigner:
    """Signs with a realm's active key; verifies with whichever key a token's kid names."""

    def __init__(
        self, keys: KeyManager, clock: Clock, *, offload_rsa_bits: int = OFFLOAD_RSA_BITS
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._offload_bits = offload_rsa_bits
        # OpenSSL signs without the GIL, so one process can sign on every core it has.
        self._pool = signing_pool()

    def close(self) -> None:
        """Stop the signing threads (waiting for signatures under way)."""
        self._pool.shutdown(wait=True)

    async def public_pem(self, realm: str, kid_sha256: str) -> str:
        """The SubjectPublicKeyInfo PEM of the published key whose kid hashes to ``kid_sha256``.

        This is how Jitsi's ``asap_key_server`` looks keys up: ``hex(sha256(kid)).pem``.

        :raises RealmNotFound:
        :raises KeyNotFound:
        """
        pem = (await self._keys.prepared(realm)).pems.get(kid_sha256.lower())
        if pem is None:
            raise KeyNotFound(kid_sha256)
        return pem

    async def verify(self, realm: str, token: str) -> tuple[dict[str, Any], KeyRecord]:
        """Check a token's signature with the realm key its kid names.

        The algorithm is pinned to the stored key, never taken from the token: an
        HS256 token can only verify against an hs256 key. Only keys that still
        verify at "now" count (not pruned, not force-deleted).

        :returns: the claims (not yet checked for time or issuer) and the key.
        :raises crypto.InvalidToken:
        :raises RealmNotFound:
        """
        parsed = crypto.parse_jwt(token)
        kid = parsed.header.get("kid")
        prepared = await self._keys.prepared(realm)
        verifier = prepared.verifiers.get(kid) if isinstance(kid, str) else None
        # The ring is rebuilt when a grace ends; this covers one served past that
        # while the store is down.
        expires_at = verifier.key.expires_at if verifier is not None else None
        if verifier is None or (expires_at is not None and expires_at <= self._clock.now()):
            raise crypto.InvalidToken("kid: no key of this realm has it")
        return crypto.verify_jwt(parsed, verifier.handle), verifier.key

    async def sign(
        self, realm: str, claims: Mapping[str, Any], *, typ: str, algo: Algo = "rs256"
    ) -> str:
        """Sign ``claims`` with the realm's active key for ``algo``, from memory.

        :raises RealmNotFound:
        :raises NoSigningKey: the realm has no active key for ``algo``.
        """
        key = (await self._keys.prepared(realm)).signing.get(algo)
        if key is None:
            raise NoSigningKey(f"realm {realm!r} has no active {algo} key")
        if key.bits is None or key.bits < self._offload_bits:
            return crypto.sign_jwt(key, claims, typ=typ)
        sign = functools.partial(crypto.sign_jwt, key, claims, typ=typ)
        return await asyncio.get_running_loop().run_in_executor(self._pool, sign)
