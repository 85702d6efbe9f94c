"""The shared base of every error the service raises on purpose.

Each layer has its own small hierarchy under these bases; the HTTP layer maps the
bases to statuses in one place (``service.http.problems``). An exception that is
not a ``ServiceError`` is a bug and renders as a detail-free 500.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServiceError",
    "Unauthorized",
    "Unavailable",
]


class ServiceError(Exception):
    """Base of every expected failure.

    ``detail`` is safe to show to the caller: it never contains a secret.
    ``retry_after`` (seconds) is set on errors that a later retry may not meet:
    an unavailable store, a rotation that must wait, a rate limit.
    """

    title = "Service error"
    retry_after: int | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(ServiceError):
    """The request is malformed or names a value the service cannot accept.

    ``field`` names the offending request member, when there is one.
    """

    title = "Invalid request"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


class NotFound(ServiceError):
    """The named resource does not exist (or is not visible to the caller)."""

    title = "Not found"


class Conflict(ServiceError):
    """The request clashes with the current state (a duplicate name or kid)."""

    title = "Conflict"


class Unauthorized(ServiceError):
    """Credentials are missing or wrong."""

    title = "Unauthorized"


class Forbidden(ServiceError):
    """The credentials are valid but do not allow this action."""

    title = "Forbidden"


class PayloadTooLarge(ServiceError):
    """The request body is over the limit."""

    title = "Payload too large"


class RateLimited(ServiceError):
    """Too many requests (or failed authentications) in a window; ``retry_after``
    seconds until it ends."""

    title = "Too many requests"

    retry_after: int

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(ServiceError):
    """A dependency (the store) cannot be reached right now; retrying may help."""

    title = "Service unavailable"

    retry_after: int

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
