"""Admin API keys: random secrets, stored only as their SHA-256, global or per realm."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from service.clock import Clock
from service.errors import Unauthorized
from service.models import AdminKey
from service.storage import Store

__all__ = ["AdminKeys"]

#: Prefix of every admin key, so a leaked one is easy to recognise (and to scan for).
PREFIX: Final = "jwa_"
BOOTSTRAP_ID: Final = "bootstrap"


def _digest(secret: str) -> str:
    # The secret has 256 bits of entropy: a fast hash is enough, no KDF needed.
    return hashlib.sha256(secret.encode()).hexdigest()


class AdminKeys:
    """Creates admin keys and authenticates bearer secrets."""

    def __init__(self, store: Store, clock: Clock, bootstrap: str | None = None) -> None:
        self._store = store
        self._clock = clock
        self._bootstrap_digest = _digest(bootstrap) if bootstrap else None

    async def create(self, realm: str | None = None) -> tuple[AdminKey, str]:
        """A new admin key, global or for ``realm``; the secret is returned only here."""
        secret = PREFIX + secrets.token_urlsafe(32)
        key = AdminKey(
            id="adm_" + secrets.token_urlsafe(12), realm=realm, created_at=self._clock.now()
        )
        await self._store.put_admin_key(_digest(secret), key)
        return key, secret

    async def authenticate(self, secret: str | None) -> AdminKey:
        """The admin key for a bearer secret.

        :raises Unauthorized: missing or unknown.
        """
        if not secret:
            raise Unauthorized("an admin key is required: Authorization: Bearer <admin key>")
        digest = _digest(secret)
        if self._bootstrap_digest and hmac.compare_digest(digest, self._bootstrap_digest):
            return AdminKey(id=BOOTSTRAP_ID, realm=None, created_at=0.0)
        key = await self._store.get_admin_key(digest)
        if key is None:
            raise Unauthorized("the admin key is not valid")
        return key
