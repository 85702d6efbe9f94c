"""OAuth errors: each carries its RFC 6749 §5.2 (or RFC 7591 §3.2.2) code and status."""

from __future__ import annotations

from typing import ClassVar

from service.errors import ServiceError

__all__ = [
    "InvalidClient",
    "InvalidClientMetadata",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "OAuthError",
    "UnauthorizedClient",
    "UnsupportedGrantType",
]


class OAuthError(ServiceError):
    """Rendered as ``{"error", "error_description"}`` with ``status``."""

    error: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400


class InvalidRequest(OAuthError):
    """Missing, repeated or malformed parameter (RFC 6749 §5.2)."""


class InvalidClient(OAuthError):
    """Client authentication failed (RFC 6749 §5.2): unknown client, wrong secret, bad assertion.

    ``basic`` is set when the client tried HTTP Basic, so the answer carries
    ``WWW-Authenticate: Basic``.
    """

    error = "invalid_client"
    status = 401

    def __init__(self, detail: str, *, basic: bool = False) -> None:
        super().__init__(detail)
        self.basic = basic


class InvalidGrant(OAuthError):
    """The grant is invalid (RFC 6749 §5.2)."""

    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    """The client may not use this grant type (RFC 6749 §5.2)."""

    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    """The server does not support this grant type (RFC 6749 §5.2)."""

    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    """The scope exceeds what the client was registered for (RFC 6749 §5.2)."""

    error = "invalid_scope"


class InvalidTarget(OAuthError):
    """The requested audience, resource or room is not allowed (RFC 8707 §2)."""

    error = "invalid_target"


class InvalidClientMetadata(OAuthError):
    """A registration field is invalid (RFC 7591 §3.2.2)."""

    error = "invalid_client_metadata"
