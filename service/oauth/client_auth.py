"""Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2, OIDC Core §9).

Exactly one method per request, and it must be the client's registered method.
For private_key_jwt the accepted algorithms come from the client's stored key,
never from the assertion's header; the jti is recorded (SET NX, until the
assertion expires) only after the signature and every claim have been checked,
so a forged assertion cannot burn a legitimate client's jti.

Requests and failures are counted by the :class:`~service.ratelimit.RateLimiter`:
a secret's before it is compared (a locked-out client id or address gets no more
guesses), an assertion's with its jti, in the same round trip.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote_plus

from service import crypto
from service.clock import Clock
from service.models import Client
from service.oauth.client_cache import ClientKey, PreparedClient
from service.oauth.clients import ClientRegistry
from service.oauth.errors import InvalidClient, InvalidRequest
from service.oauth.registration import hash_secret
from service.ratelimit import Endpoint, RateLimiter, RateLimits
from service.storage import Store

__all__ = ["ASSERTION_TYPE", "AssertionPolicy", "ClientAuthenticator"]

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: iat/nbf/exp tolerance for client clocks.
LEEWAY: Final = 30
_TYPS: Final = frozenset({"client-authentication+jwt", "jwt"})
_KTY_OF_ALG: Final = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


@dataclass(frozen=True)
class AssertionPolicy:
    """What a client assertion must look like for one realm."""

    issuer: str
    token_endpoint: str
    max_lifetime: int
    strict_audience: bool


class ClientAuthenticator:
    """Finds and authenticates the client of a token request."""

    def __init__(
        self,
        clients: ClientRegistry,
        store: Store,
        clock: Clock,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._clients = clients
        self._clock = clock
        # No limiter: nothing is counted (only the jti reaches the store).
        self._limiter = limiter or RateLimiter(store, clock, RateLimits())

    async def authenticate(
        self,
        realm: str,
        form: Mapping[str, str],
        authorization: str | None,
        policy: AssertionPolicy,
        *,
        address: str | None = None,
        endpoint: Endpoint = "token",
    ) -> Client:
        """The authenticated client of a request to ``endpoint`` from ``address``.

        :raises InvalidRequest: more than one method was used.
        :raises InvalidClient: no method, unknown client, or a failed check.
        :raises RateLimited: over a rate limit, or locked out after failures.
        """
        where = _Origin(realm, address, endpoint)
        basic = authorization is not None and authorization[:6].lower() == "basic "
        methods = [basic, "client_secret" in form, "client_assertion" in form]
        if sum(methods) > 1:
            raise InvalidRequest("use exactly one client authentication method")
        if basic:
            client_id, secret = _basic_credentials(str(authorization))
            _same_client_id(form, client_id)
            return await self._secret(where, client_id, secret, "client_secret_basic")
        if "client_secret" in form:
            return await self._secret(
                where, form.get("client_id", ""), form["client_secret"], "client_secret_post"
            )
        if "client_assertion" in form:
            return await self._assertion(where, form, policy)
        raise InvalidClient(
            "client authentication is required", cause="no_credentials", public=True
        )

    async def _secret(self, where: _Origin, client_id: str, secret: str, method: str) -> Client:
        realm, limiter = where.realm, self._limiter
        prepared = await self._clients.find(realm, client_id) if client_id else None
        admission = await limiter.admit_client(
            realm, where.endpoint, where.address, client_id, known=prepared is not None
        )
        try:
            client = _check_secret(prepared, client_id, secret, method)
        except InvalidClient:
            # Whatever failed counts against the id: were an unknown id not counted,
            # the lockout that only a real client reached would tell that it exists.
            await limiter.client_failed(realm, where.address, client_id)
            raise
        await limiter.client_succeeded(admission)
        return client

    async def _assertion(
        self, where: _Origin, form: Mapping[str, str], policy: AssertionPolicy
    ) -> Client:
        try:
            client, jti, ttl = await self._verified_assertion(where.realm, form, policy)
        except InvalidClient:
            await self._limiter.client_failed(where.realm, where.address, None)
            raise
        # Counted with the jti, in one round trip: this path's only store access.
        if not await self._limiter.consume_jti(
            where.realm, where.endpoint, where.address, client.client_id, jti, ttl
        ):
            raise InvalidClient(
                "client_assertion has been used already (jti)", cause="replayed_jti", public=True
            )
        return client

    async def _verified_assertion(
        self, realm: str, form: Mapping[str, str], policy: AssertionPolicy
    ) -> tuple[Client, str, float]:
        """The client, the jti and how long to keep it, once every check has passed."""
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidClient(
                f"client_assertion_type must be {ASSERTION_TYPE}",
                cause="malformed_assertion",
                public=True,
            )
        try:
            # Parsed once: the header picks the key, the unverified sub the client.
            assertion = crypto.parse_jwt(form["client_assertion"])
            header, claims = assertion.header, assertion.claims
        except crypto.InvalidToken as exc:
            raise InvalidClient(
                f"client_assertion: {exc.detail}", cause="malformed_assertion", public=True
            ) from exc
        client_id = claims.get("sub")
        if not isinstance(client_id, str) or not client_id:
            raise InvalidClient(
                "client_assertion has no sub", cause="malformed_assertion", public=True
            )
        _same_client_id(form, client_id)
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _TYPS):
            raise InvalidClient(
                "client_assertion typ must be client-authentication+jwt or JWT",
                cause="malformed_assertion",
                public=True,
            )
        prepared = await self._clients.find(realm, client_id)
        if prepared is None:
            raise InvalidClient(f"unknown client {client_id!r}", cause="unknown_client")
        client = prepared.client
        if client.token_endpoint_auth_method != "private_key_jwt":
            raise InvalidClient(
                f"client {client_id!r} is registered for {client.token_endpoint_auth_method}, "
                "not private_key_jwt",
                cause="wrong_method",
            )
        key = _select_key(prepared, header)
        try:
            verified = crypto.verify_jwt(assertion, key.handle)
        except (crypto.InvalidToken, crypto.InvalidKey) as exc:
            raise InvalidClient(
                f"client_assertion of {client_id!r}: {exc.detail}", cause="bad_signature"
            ) from exc
        # From here on the caller holds the client's key: the reasons are shown.
        now = self._clock.now()
        try:
            crypto.check_claims(
                verified,
                now=now,
                leeway=LEEWAY,
                required=("iss", "sub", "aud", "exp", "jti"),
                iss=client.client_id,
                sub=client.client_id,
            )
        except crypto.InvalidToken as exc:
            raise InvalidClient(
                f"client_assertion: {exc.detail}", cause="invalid_claims", public=True
            ) from exc
        exp = float(verified["exp"])
        if exp > now + policy.max_lifetime + LEEWAY:
            raise InvalidClient(
                f"client_assertion exp is more than {policy.max_lifetime} s ahead",
                cause="invalid_claims",
                public=True,
            )
        _check_audience(verified.get("aud"), policy)
        jti = verified["jti"]
        if not isinstance(jti, str) or not jti:
            raise InvalidClient(
                "client_assertion jti must be a non-empty string",
                cause="malformed_assertion",
                public=True,
            )
        # Kept until the assertion could no longer be accepted anyway.
        return client, jti, exp + LEEWAY - now


@dataclass(frozen=True)
class _Origin:
    """Where a request authenticates: its realm, its address, its endpoint."""

    realm: str
    address: str | None
    endpoint: Endpoint


def _check_secret(
    prepared: PreparedClient | None, client_id: str, secret: str, method: str
) -> Client:
    is_basic = method == "client_secret_basic"
    if prepared is None:
        raise InvalidClient(f"unknown client {client_id!r}", cause="unknown_client", basic=is_basic)
    client = prepared.client
    if client.token_endpoint_auth_method != method:
        raise InvalidClient(
            f"client {client_id!r} is registered for {client.token_endpoint_auth_method}, "
            f"not {method}",
            cause="wrong_method",
            basic=is_basic,
        )
    expected = client.client_secret_hash or ""
    if not hmac.compare_digest(hash_secret(secret), expected):
        raise InvalidClient(
            f"wrong secret for client {client_id!r}", cause="wrong_secret", basic=is_basic
        )
    return client


def _basic_credentials(authorization: str) -> tuple[str, str]:
    # RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined by ':'.
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise InvalidClient(
            "malformed HTTP Basic credentials",
            cause="malformed_credentials",
            basic=True,
            public=True,
        ) from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient(
            "malformed HTTP Basic credentials",
            cause="malformed_credentials",
            basic=True,
            public=True,
        )
    return unquote_plus(client_id), unquote_plus(secret)


def _same_client_id(form: Mapping[str, str], client_id: str) -> None:
    # A client_id beside other credentials must name the same client
    # (RFC 6749 §2.3.1, RFC 7523 §3): a request that says two things is refused,
    # not read one way by this server and another by a proxy or a log.
    if "client_id" in form and form["client_id"] != client_id:
        raise InvalidRequest("client_id does not match the client's credentials")


def _select_key(client: PreparedClient, header: Mapping[str, Any]) -> ClientKey:
    kid = header.get("kid")
    if kid is not None:
        for key in client.keys:
            if key.jwk.get("kid") == kid:
                return key
        raise InvalidClient(
            f"client_assertion kid {kid!r} is not one of the client's keys", cause="unknown_key"
        )
    alg = header.get("alg")
    kty = _KTY_OF_ALG.get(alg[:2]) if isinstance(alg, str) else None
    candidates = [k for k in client.keys if k.jwk.get("kty") == kty]
    if len(candidates) != 1:
        raise InvalidClient(
            "client_assertion has no kid and no single key of its type matches",
            cause="unknown_key",
        )
    return candidates[0]


def _check_audience(aud: object, policy: AssertionPolicy) -> None:
    # RFC 7523bis: the audience is the issuer identifier; today's client libraries
    # send the token endpoint URL, accepted unless strict. One audience only.
    if isinstance(aud, list):
        if len(aud) != 1:
            raise InvalidClient(
                "client_assertion aud must have exactly one value",
                cause="wrong_audience",
                public=True,
            )
        aud = aud[0]
    accepted = {policy.issuer} if policy.strict_audience else {policy.issuer, policy.token_endpoint}
    if aud not in accepted:
        raise InvalidClient(
            "client_assertion aud is not this server's issuer", cause="wrong_audience", public=True
        )
