"""Errors of the keys layer."""

from __future__ import annotations

from service.errors import Conflict, NotFound, Unavailable


class RealmNotFound(NotFound):
    """No such realm (or not one the caller may see)."""

    def __init__(self, realm: str) -> None:
        super().__init__(f"realm {realm!r} does not exist")


class KeyNotFound(NotFound):
    """No such key in the realm."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"key {key_id!r} does not exist in this realm")


class KidInUse(Conflict):
    """Another live key of the realm has this kid."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"kid {kid!r} is already used by a key of this realm")


class DuplicateKey(Conflict):
    """The uploaded public key is already a live key of the realm."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"this public key is already key {key_id!r} of this realm: the JWKS would "
            "publish it twice"
        )
        self.key_id = key_id


class RealmNameTaken(Conflict):
    """A realm of this name exists."""

    def __init__(self, realm: str) -> None:
        super().__init__(f"realm {realm!r} already exists")


class Busy(Unavailable):
    """Too many concurrent writers on one realm; the change was not made."""


class NoSigningKey(Conflict):
    """The realm has no active key for the requested algorithm."""


class TooManyRealms(Conflict):
    """The store holds as many realms as it may."""


class TooManyKeys(Conflict):
    """The realm holds as many keys as it may; a new one needs an old one deleted."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the realm holds {limit} keys, the most a realm may: delete keys it no "
            "longer needs first"
        )


class RotationTooSoon(Conflict):
    """The next key has not been published long enough to start signing."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"the next key is published but may sign only in {retry_after} s, once every "
            "verifier's cached JWKS has it; retry then, or rotate with immediate=true"
        )
        self.retry_after = retry_after


class DefaultRealmProtected(Conflict):
    """The default realm cannot be deleted."""

    def __init__(self) -> None:
        super().__init__(
            "the default realm cannot be deleted: the service's own JWKS, discovery and "
            "token endpoints are its URLs; delete its keys or clients instead"
        )


class UndeliveredSecret(Conflict):
    """The change would make an HS256 secret that nobody receives.

    HS256 verifiers hold the secret itself, not a JWKS, so a secret the API does not
    hand out breaks every one of them the moment it signs.
    """
