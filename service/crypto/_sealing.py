"""AES-256-GCM sealing of secrets at rest (private JWKs, HS256 secrets).

A sealed value names the key-encryption key (KEK) it was sealed under:

- ``v2.<kek id>.`` + base64(nonce || ciphertext || tag), under any KEK but the
  default one; the ``v2.<kek id>.`` header is part of the associated data, so the
  id cannot be changed without the value failing to open;
- ``v1.`` + base64(nonce || ciphertext || tag), under the KEK with the default id
  (``DEFAULT_KEK_ID``, ``0``). Every value sealed before KEKs had ids is in this
  form, and a store that never rotates its KEK keeps writing it, so it stays
  readable by earlier versions (a rollback).

The rest of the associated data binds a ciphertext to the record it belongs to
(realm and key id), so a ciphertext copied into another record does not open.

A :class:`Sealer` seals under its first KEK and opens a value under whichever of
its KEKs the value names, so that during a KEK rotation every process reads the
values sealed under the old KEK and under the new one.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.crypto._errors import MissingKek, SealError
from service.models import DEFAULT_KEK_ID, KEK_ID

__all__ = ["Sealer", "new_kek", "sealed_kek_id"]

_V1: Final = "v1."
_V2: Final = "v2."
_NONCE_BYTES: Final = 12


def new_kek() -> bytes:
    """Return a fresh random 256-bit key-encryption key."""
    return AESGCM.generate_key(bit_length=256)


def sealed_kek_id(sealed: str) -> str:
    """The id of the KEK that ``sealed`` names, without opening it.

    :raises SealError: the value is not in a sealed format.
    """
    return _parse(sealed)[0]


def _parse(sealed: str) -> tuple[str, bytes, str]:
    """The KEK id, the raw bytes and the header (bound as associated data in v2)."""
    if sealed.startswith(_V1):
        kek_id, header, body = DEFAULT_KEK_ID, "", sealed[len(_V1) :]
    elif sealed.startswith(_V2):
        kek_id, dot, body = sealed[len(_V2) :].partition(".")
        if not dot or not KEK_ID.fullmatch(kek_id):
            raise SealError("sealed value has an unknown format")
        header = f"{_V2}{kek_id}."
    else:
        raise SealError("sealed value has an unknown format")
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SealError("sealed value is not valid base64") from exc
    return kek_id, raw, header


class Sealer:
    """Seals secrets under one KEK, and opens them under any of several.

    :param kek: the KEK that :meth:`seal` uses, with the id ``kek_id``.
    :param previous: ``(id, KEK)`` pairs that only open values (a rotation's old KEKs).
    :raises SealError: a KEK is not 32 bytes, an id is malformed or given twice.
    """

    def __init__(
        self,
        kek: bytes,
        *,
        kek_id: str = DEFAULT_KEK_ID,
        previous: Iterable[tuple[str, bytes]] = (),
    ) -> None:
        self._aeads: dict[str, AESGCM] = {}
        for id_, key in ((kek_id, kek), *previous):
            if not KEK_ID.fullmatch(id_):
                raise SealError("a KEK id must be 1-32 of A-Z, a-z, 0-9, '-' and '_'")
            if id_ in self._aeads:
                raise SealError(f"KEK id {id_!r} is given twice")
            if len(key) != 32:
                raise SealError("the key-encryption key must be 32 bytes")
            self._aeads[id_] = AESGCM(key)
        self._kek_id = kek_id
        self._header = _V1 if kek_id == DEFAULT_KEK_ID else f"{_V2}{kek_id}."

    @property
    def kek_id(self) -> str:
        """The id of the KEK that new values are sealed under."""
        return self._kek_id

    @property
    def kek_ids(self) -> frozenset[str]:
        """The ids of every KEK this sealer opens values with."""
        return frozenset(self._aeads)

    def seal(self, plaintext: bytes, aad: bytes) -> str:
        """Encrypt ``plaintext`` under the first KEK, bound to ``aad``; a random nonce per call."""
        nonce = os.urandom(_NONCE_BYTES)
        header = "" if self._header == _V1 else self._header
        sealed = nonce + self._aeads[self._kek_id].encrypt(nonce, plaintext, header.encode() + aad)
        return self._header + base64.b64encode(sealed).decode("ascii")

    def open(self, sealed: str, aad: bytes) -> bytes:
        """Decrypt a value made by :meth:`seal` (here or with another of the KEKs) with the
        same ``aad``.

        :raises MissingKek: the value names a KEK id this sealer does not have.
        :raises SealError: the value is malformed, tampered, or its KEK id names another key.
        """
        kek_id, raw, header = _parse(sealed)
        aead = self._aeads.get(kek_id)
        if aead is None:
            raise MissingKek(kek_id)
        nonce, ciphertext = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        try:
            return aead.decrypt(nonce, ciphertext, header.encode() + aad)
        except (InvalidTag, ValueError) as exc:  # ValueError: too short to hold a nonce
            raise SealError("sealed value does not open with this KEK") from exc

    def is_current(self, sealed: str) -> bool:
        """Whether ``sealed`` names the first KEK (a rekey leaves it as it is).

        :raises SealError: the value is not in a sealed format.
        """
        return sealed_kek_id(sealed) == self._kek_id

    def reseal(self, sealed: str, aad: bytes) -> str:
        """``sealed``, opened under the KEK it names and sealed again under the first.

        :raises MissingKek:
        :raises SealError:
        """
        return self.seal(self.open(sealed, aad), aad)
