"""OAuth errors, and the one table that turns every other service error into one.

Each class carries its RFC 6749 §5.2 (RFC 6750 §3, RFC 7591 §3.2.2, RFC 8707 §2)
code and HTTP status. Endpoints under an issuer (token, introspection,
registration, discovery, the ASAP keys) raise what they like; :func:`to_oauth`
gives the OAuth error to answer, so that every failure there is
``{"error", "error_description"}`` JSON, and an unexpected one is a bare
``server_error`` that tells the caller nothing.
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

from service.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceError,
    Unauthorized,
    Unavailable,
)
from service.keys import NoSigningKey

__all__ = [
    "AuthFailure",
    "InsufficientScope",
    "InvalidClient",
    "InvalidClientMetadata",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "InvalidToken",
    "MethodNotAllowed",
    "OAuthError",
    "RequestTooLarge",
    "ServerError",
    "TemporarilyUnavailable",
    "TooManyRequests",
    "UnauthorizedClient",
    "UnknownResource",
    "UnsupportedGrantType",
    "to_oauth",
]


class OAuthError(ServiceError):
    """Rendered as ``{"error", "error_description"}`` with ``status``.

    An empty ``detail`` leaves ``error_description`` out.
    """

    error: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400


class InvalidRequest(OAuthError):
    """Missing, repeated or malformed parameter (RFC 6749 §5.2)."""


#: Why a client failed to authenticate, from a closed set (the metrics count by it;
#: ``InvalidClient.reason`` says it in words, for the log).
AuthFailure = Literal[
    "no_credentials",
    "malformed_credentials",
    "unknown_client",
    "wrong_method",
    "wrong_secret",
    "malformed_assertion",
    "unknown_key",
    "bad_signature",
    "invalid_claims",
    "wrong_audience",
    "replayed_jti",
]


class InvalidClient(OAuthError):
    """Client authentication failed (RFC 6749 §5.2).

    The caller sees one description, whatever failed, until it has proven that it
    holds the client's credentials: an unknown client, a wrong secret, a wrong
    method, an unknown kid and a bad signature all read "client authentication
    failed", so that the answers do not tell which client ids exist. ``reason``
    says what failed, for the log, and ``cause`` the same from a closed set, for
    the metrics. ``public`` reasons are shown as they are: those about the
    request's shape (no credentials, a malformed assertion) and those found after
    the assertion's signature verified (its exp, aud or jti).

    ``basic`` is set when the client tried HTTP Basic, so the answer carries
    ``WWW-Authenticate: Basic``.
    """

    error = "invalid_client"
    status = 401
    DESCRIPTION: ClassVar[str] = "client authentication failed"

    def __init__(
        self, reason: str, *, cause: AuthFailure, basic: bool = False, public: bool = False
    ) -> None:
        super().__init__(reason if public else self.DESCRIPTION)
        self.reason = reason
        self.cause = cause
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


class InvalidToken(OAuthError):
    """The bearer token (an admin key) is missing or wrong (RFC 6750 §3)."""

    error = "invalid_token"
    status = 401


class InsufficientScope(OAuthError):
    """The bearer token is valid but does not allow this (RFC 6750 §3)."""

    error = "insufficient_scope"
    status = 403


class UnknownResource(OAuthError):
    """No such realm or key under this issuer."""

    status = 404


class MethodNotAllowed(OAuthError):
    """The endpoint does not answer this method; ``allow`` lists those it does."""

    status = 405

    def __init__(self, detail: str, *, allow: str) -> None:
        super().__init__(detail)
        self.allow = allow


class RequestTooLarge(OAuthError):
    """The request body is over the limit."""

    status = 413


class ServerError(OAuthError):
    """The server cannot answer (RFC 6749 §5.2 ``server_error``): never the caller's fault."""

    error = "server_error"
    status = 500


class TemporarilyUnavailable(OAuthError):
    """The store is briefly away (RFC 6749 §5.2 ``temporarily_unavailable``)."""

    error = "temporarily_unavailable"
    status = 503


class TooManyRequests(OAuthError):
    """A rate limit or a failed-authentication lockout: 429 with ``Retry-After``.

    RFC 6749 registers no code for "too many requests"; ``temporarily_unavailable``
    (§4.1.2.1, §11.4) is its code for "cannot handle the request now, try later", so
    a client that knows only the registered codes still reads it right.
    """

    error = "temporarily_unavailable"
    status = 429


#: Service errors as OAuth errors, most specific first: the first base that matches.
#: A realm without an active key for the client's algorithm is the operator's
#: problem, not the client's: ``server_error``, with the reason.
_FROM_SERVICE: Final[tuple[tuple[type[ServiceError], type[OAuthError]], ...]] = (
    (NoSigningKey, ServerError),
    (Unavailable, TemporarilyUnavailable),
    (RateLimited, TooManyRequests),
    (Unauthorized, InvalidToken),
    (Forbidden, InsufficientScope),
    (NotFound, UnknownResource),
    (PayloadTooLarge, RequestTooLarge),
    (InvalidInput, InvalidRequest),
    (Conflict, InvalidRequest),
)


def to_oauth(exc: BaseException) -> OAuthError:
    """The OAuth error to answer for ``exc``: itself, its row of the table, or a
    ``server_error`` without a description for anything unexpected."""
    if isinstance(exc, OAuthError):
        return exc
    if isinstance(exc, ServiceError):
        for base, oauth in _FROM_SERVICE:
            if isinstance(exc, base):
                translated = oauth(exc.detail)
                translated.retry_after = exc.retry_after
                return translated
    return ServerError("")
