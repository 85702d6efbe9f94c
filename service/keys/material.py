"""Key material: making key records, and opening stored records into key handles.

Everything that touches a key's secret half is here: generating keys (in a
thread: RSA generation takes seconds at 4096 bits), importing an HS256 secret,
checking an uploaded public key, sealing with the KEK, and the reverse, opening a
sealed secret and importing it into a ``crypto`` handle; and sealing a secret
again under the newest KEK (a rekey). The associated data that
binds a sealed secret to its record (:func:`sealed_aad`) is spelled here only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from dataclasses import dataclass

from service import crypto
from service.errors import InvalidInput
from service.keys._threads import keygen_pool
from service.keys.requests import ImportSecret, KeySpec, UploadPublicKey
from service.models import JWS_ALG, KeyRecord

__all__ = ["CreatedKey", "KeyMaterial", "sealed_aad"]


def sealed_aad(realm: str, key_id: str) -> bytes:
    """The AES-GCM associated data of a key's sealed secret: ``realm/key_id``.

    A ciphertext copied into another realm's or another key's record does not open.
    """
    return f"{realm}/{key_id}".encode()


@dataclass(frozen=True)
class CreatedKey:
    """A new key; ``secret`` is the HS256 secret, shown to the caller this once."""

    key: KeyRecord
    secret: str | None = None


class KeyMaterial:
    """Creates sealed key records and opens them into signing and verification handles."""

    def __init__(self, sealer: crypto.Sealer, rsa_bits: int = 2048) -> None:
        self._sealer = sealer
        self._rsa_bits = rsa_bits

    async def create(self, realm: str, spec: KeySpec, now: float) -> CreatedKey:
        """A record for ``spec`` (see :mod:`service.keys.requests`), not yet stored.

        Generated and imported keys are ``active``; uploaded keys ``verify_only``.

        :raises InvalidInput: an uploaded key is malformed, private or too weak.
        """
        key_id = "jky_" + secrets.token_urlsafe(16)
        if isinstance(spec, UploadPublicKey):
            try:
                info = crypto.parse_public_key(spec.public_key, spec.algo)
            except crypto.InvalidKey as exc:
                raise InvalidInput(f"public_key {exc.detail}", field="public_key") from exc
            kid = spec.kid or key_id
            record = KeyRecord(
                id=key_id,
                kid=kid,
                algo=info.algo,
                status="verify_only",
                created_at=now,
                name=spec.name,
                public_jwk=crypto.public_jwk(info.jwk, kid=kid, algo=info.algo),
                expected_issuer=spec.expected_issuer,
                expected_audience=spec.expected_audience,
            )
            return CreatedKey(record)
        if isinstance(spec, ImportSecret):
            record = KeyRecord(
                id=key_id,
                kid=spec.kid or key_id,
                algo="hs256",
                status="active",
                created_at=now,
                name=spec.name,
                sealed_secret=self._seal(realm, key_id, spec.secret),
            )
            return CreatedKey(record, spec.secret)
        # RSA generation takes long enough to stall the event loop: a low-priority
        # thread, which OpenSSL runs without the GIL while it searches for primes.
        generated = await asyncio.get_running_loop().run_in_executor(
            keygen_pool(), crypto.generate_key, spec.algo, self._rsa_bits
        )
        record = KeyRecord(
            id=key_id,
            kid=key_id,
            algo=spec.algo,
            status="active",
            created_at=now,
            name=spec.name,
            public_jwk=(
                crypto.public_jwk(generated.public_jwk, kid=key_id, algo=spec.algo)
                if generated.public_jwk is not None
                else None
            ),
            sealed_secret=self._seal(realm, key_id, generated.secret),
        )
        return CreatedKey(record, generated.secret if spec.algo == "hs256" else None)

    def signing_key(self, realm: str, key: KeyRecord) -> crypto.SigningKey:
        """Open ``key``'s sealed secret and import it for signing.

        :raises crypto.SealError: the secret does not open with this KEK here.
        :raises crypto.InvalidKey: it opens, but is not a usable ``key.algo`` key.
        """
        return crypto.load_signing_key(self._open(realm, key), key.algo, kid=key.kid)

    def verification_key(self, realm: str, key: KeyRecord) -> crypto.VerificationKey:
        """Import what verifies ``key``'s tokens: its public JWK, or its HS256 secret.

        The algorithm is pinned to the stored key (``JWS_ALG[key.algo]``), never
        taken from a token: an HS256 token only verifies against an hs256 key.

        :raises crypto.SealError:
        :raises crypto.InvalidKey:
        """
        material = key.public_jwk if key.public_jwk is not None else self._open(realm, key)
        return crypto.load_verification_key(material, (JWS_ALG[key.algo],), kid=key.kid)

    def needs_reseal(self, key: KeyRecord) -> bool:
        """Whether ``key`` holds a secret sealed under a KEK other than the first.

        :raises crypto.SealError: its sealed secret is in no known format.
        """
        return key.sealed_secret is not None and not self._sealer.is_current(key.sealed_secret)

    def resealed(self, realm: str, key: KeyRecord) -> KeyRecord:
        """``key`` with its secret sealed again under the first KEK: the same key
        material, a new ciphertext.

        :raises crypto.MissingKek: the secret is sealed under a KEK not configured here.
        :raises crypto.SealError: it does not open.
        """
        if key.sealed_secret is None:
            return key
        aad = sealed_aad(realm, key.id)
        return dataclasses.replace(key, sealed_secret=self._sealer.reseal(key.sealed_secret, aad))

    def _seal(self, realm: str, key_id: str, secret: str) -> str:
        return self._sealer.seal(secret.encode(), sealed_aad(realm, key_id))

    def _open(self, realm: str, key: KeyRecord) -> str:
        if key.sealed_secret is None:
            raise crypto.InvalidKey("the key has no secret in this store")
        return self._sealer.open(key.sealed_secret, sealed_aad(realm, key.id)).decode()
