"""Errors of the crypto layer."""

from __future__ import annotations

from service.errors import ServiceError


class CryptoError(ServiceError):
    """Base of the crypto layer's errors."""


class InvalidKey(CryptoError):
    """Key material is malformed, private where it must be public, or too weak.

    The detail never contains key material.
    """


class SealError(CryptoError):
    """A sealed secret cannot be opened: wrong KEK, tampered or misplaced ciphertext."""


class InvalidToken(CryptoError):
    """A JWT is malformed, its signature or algorithm is not acceptable, or a claim fails.

    The detail names the failing check (``"exp: the token has expired"``); it never
    echoes the token, a key or a secret.
    """


class MissingKek(SealError):
    """A sealed value names a KEK id that is not configured: ``kek_id`` (not secret)."""

    def __init__(self, kek_id: str, detail: str | None = None) -> None:
        super().__init__(detail or f"sealed under KEK {kek_id!r}, which is not configured")
        self.kek_id = kek_id
