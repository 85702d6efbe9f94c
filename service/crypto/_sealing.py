"""AES-256-GCM sealing of secrets at rest (private JWKs, HS256 secrets).

Each sealed value is ``v1.`` + base64(nonce || ciphertext || tag). The associated
data binds a ciphertext to the record it belongs to (realm and key id), so a
ciphertext copied into another record does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.crypto._errors import SealError

__all__ = ["Sealer", "new_kek"]

_PREFIX: Final = "v1."
_NONCE_BYTES: Final = 12


def new_kek() -> bytes:
    """Return a fresh random 256-bit key-encryption key."""
    return AESGCM.generate_key(bit_length=256)


class Sealer:
    """Seals and opens secrets under one key-encryption key."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != 32:
            raise SealError("the key-encryption key must be 32 bytes")
        self._aead = AESGCM(kek)

    def seal(self, plaintext: bytes, aad: bytes) -> str:
        """Encrypt ``plaintext`` bound to ``aad``; a random nonce per call."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, plaintext, aad)
        return _PREFIX + base64.b64encode(sealed).decode("ascii")

    def open(self, sealed: str, aad: bytes) -> bytes:
        """Decrypt a value made by :meth:`seal` with the same ``aad``.

        :raises SealError: the value is malformed, tampered, or sealed under another KEK.
        """
        if not sealed.startswith(_PREFIX):
            raise SealError("sealed value has an unknown format")
        try:
            raw = base64.b64decode(sealed[len(_PREFIX) :], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SealError("sealed value is not valid base64") from exc
        nonce, ciphertext = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except (InvalidTag, ValueError) as exc:  # ValueError: too short to hold a nonce
            raise SealError("sealed value does not open with this KEK") from exc
