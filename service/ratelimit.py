"""Rate limits and failed-authentication lockouts, counted in the store.

Every counter is a fixed window in the store (:meth:`Store.count`), so that all
replicas share it; a request's counters take one round trip, made before its
credentials are checked:

- the token endpoint counts each request per client and per source address;
  introspection per client; the admin API (and a Bearer admin key at register and
  introspection) per admin key. Each limit is per minute.
- Failed authentications count per client id (a secret that failed, whatever the
  reason, so that the answer never tells which client ids exist) and per address
  (any client or admin key that failed there). ``failures`` of them within
  ``lockout`` seconds lock the client id, or the address, for ``lockout`` seconds
  from the last one: a locked request is refused (429) before its secret is
  compared, so no more guesses are made. A success resets its client id's count;
  an address's count only expires, so that one good client at an address cannot
  cover for the guesses made beside it.

A private_key_jwt request is counted with its jti, in the same round trip (the
signature is checked first: the jti is only recorded for a verified assertion).
Its failures count per address only: a signature cannot be guessed, and counting
them per client id would only let anyone lock the client out.

The limits fail open: while the store cannot count, requests go on unlimited
(client_secret tokens stay available from the client cache), the first failure
is logged and the store is left alone for a second. Private_key_jwt fails closed
all the same: its jti needs the store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from service.clock import Clock
from service.config import Settings
from service.errors import RateLimited
from service.storage import Quota, QuotaExceeded, Store, StoreUnavailable

__all__ = ["Admission", "Endpoint", "RateLimiter", "RateLimits"]

log = logging.getLogger(__name__)

#: The endpoints where clients authenticate.
Endpoint = Literal["token", "introspect"]
#: Rate limits are per minute.
WINDOW: Final = 60.0
#: Seconds the limiter leaves a store alone after it failed to answer.
FAIL_OPEN_FOR: Final = 1.0
_FAILURES: Final = "failures"


@dataclass(frozen=True)
class RateLimits:
    """The limits; 0 turns one off."""

    token_per_client: int = 0
    token_per_address: int = 0
    introspect_per_client: int = 0
    admin_per_key: int = 0
    failures: int = 0
    failures_per_address: int = 0
    lockout: int = 60

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        """The limits the ``JWKS_RATE_*`` and ``JWKS_AUTH_*`` settings name."""
        return cls(
            token_per_client=settings.rate_token_per_client,
            token_per_address=settings.rate_token_per_address,
            introspect_per_client=settings.rate_introspect_per_client,
            admin_per_key=settings.rate_admin_per_key,
            failures=settings.auth_failures,
            failures_per_address=settings.auth_failures_per_address,
            lockout=settings.auth_lockout,
        )


@dataclass(frozen=True)
class Admission:
    """A client's request let through: what its outcome updates.

    ``failures`` is the client id's count of failed authentications so far, read
    in the same round trip, so that a success costs another one only to reset it.
    """

    realm: str
    client_id: str
    failures: int = 0


class RateLimiter:
    """Counts requests and failures in the store; refuses with :class:`RateLimited`."""

    def __init__(self, store: Store, clock: Clock, limits: RateLimits) -> None:
        self._store = store
        self._clock = clock
        self._limits = limits
        self._resume_at = float("-inf")

    async def admit_client(
        self,
        realm: str,
        endpoint: Endpoint,
        address: str | None,
        client_id: str,
        *,
        known: bool,
    ) -> Admission:
        """Count a client_secret request, before its secret is compared.

        ``known``: the client exists. Only then is its request counted (an unknown
        id would leave a counter per guess); its lockout is checked either way.

        :raises RateLimited: over a limit, or locked out.
        """
        quotas = self._requests(realm, endpoint, address, client_id if known else None)
        quotas += self._address_failures(address, "check")
        lim = self._limits
        if client_id and lim.failures:
            quotas.append(Quota(_FAILURES, client_id, realm, "check", lim.failures, lim.lockout))
        counts = await self._count(quotas)
        # The client id's failures are the last count, if they were read.
        failures = counts[-1] if client_id and lim.failures else 0
        return Admission(realm, client_id, failures)

    async def client_succeeded(self, admission: Admission) -> None:
        """Reset the client id's failures, if it had any."""
        if admission.failures:
            await self._count([Quota(_FAILURES, admission.client_id, admission.realm, "reset")])

    async def client_failed(self, realm: str, address: str | None, client_id: str | None) -> None:
        """Count a failed client authentication against ``address`` and ``client_id``."""
        lim = self._limits
        quotas = self._address_failures(address, "fail")
        if client_id and lim.failures:
            quotas.append(Quota(_FAILURES, client_id, realm, "fail", lim.failures, lim.lockout))
        await self._failed(quotas)

    async def consume_jti(
        self,
        realm: str,
        endpoint: Endpoint,
        address: str | None,
        client_id: str,
        jti: str,
        ttl: float,
    ) -> bool:
        """Record a verified assertion's jti and count its request, in one round trip.

        Fails closed: the jti needs the store.

        :returns: ``False`` on a replay.
        :raises RateLimited: over a limit, or the address is locked out (the jti is
            used all the same: clients sign a new assertion per request).
        :raises StoreUnavailable: the store did not answer.
        """
        quotas = self._requests(realm, endpoint, address, client_id)
        quotas += self._address_failures(address, "check")
        try:
            return await self._store.consume_jti(realm, client_id, jti, ttl, quotas)
        except QuotaExceeded as exc:
            raise _refusal(exc) from exc

    async def admit_admin(self, digest: str, address: str | None) -> None:
        """Count an admin API request by the key's digest, before the key is looked up.

        :raises RateLimited: over the key's limit, or the address is locked out.
        """
        quotas = self._address_failures(address, "check")
        if self._limits.admin_per_key:
            quotas.append(
                Quota("admin", f"admin:{digest}", None, "hit", self._limits.admin_per_key, WINDOW)
            )
        await self._count(quotas)

    async def admin_failed(self, address: str | None) -> None:
        """Count a wrong admin key against ``address``."""
        await self._failed(self._address_failures(address, "fail"))

    def _requests(
        self, realm: str, endpoint: Endpoint, address: str | None, client_id: str | None
    ) -> list[Quota]:
        lim = self._limits
        per_client = lim.token_per_client if endpoint == "token" else lim.introspect_per_client
        quotas: list[Quota] = []
        if client_id and per_client:
            quotas.append(Quota(endpoint, client_id, realm, "hit", per_client, WINDOW))
        if address and endpoint == "token" and lim.token_per_address:
            quotas.append(
                Quota("token", f"addr:{address}", None, "hit", lim.token_per_address, WINDOW)
            )
        return quotas

    def _address_failures(self, address: str | None, op: Literal["fail", "check"]) -> list[Quota]:
        lim = self._limits
        if not address or not lim.failures_per_address:
            return []
        subject = f"addr:{address}"
        return [Quota(_FAILURES, subject, None, op, lim.failures_per_address, lim.lockout)]

    async def _failed(self, quotas: list[Quota]) -> None:
        try:
            counts = await self._count(quotas)
        except RateLimited:
            # Failures that raced past the lockout check: this request's credentials
            # were checked, so it gets the answer of the check.
            return
        for quota, count in zip(quotas, counts, strict=True):
            if count == quota.limit:
                log.warning(
                    "%s %r locked out for %d s after %d failed authentications",
                    "client id" if quota.realm else "address",
                    quota.subject.removeprefix("addr:"),
                    quota.window,
                    count,
                )

    async def _count(self, quotas: Sequence[Quota]) -> list[int]:
        """The counts; zeros if the store does not answer (fail open)."""
        if not quotas:
            return []
        now = self._clock.now()
        if now < self._resume_at:
            return [0] * len(quotas)
        try:
            return await self._store.count(quotas)
        except QuotaExceeded as exc:
            raise _refusal(exc) from exc
        except StoreUnavailable as exc:
            if self._resume_at < now - FAIL_OPEN_FOR:  # once per outage, not per request
                log.warning("rate limits not counted, the store did not answer: %s", exc.detail)
            self._resume_at = now + FAIL_OPEN_FOR
            return [0] * len(quotas)


def _refusal(exc: QuotaExceeded) -> RateLimited:
    if exc.quota.scope == _FAILURES:
        detail = "too many failed authentications; retry later"
    else:
        detail = "too many requests; retry later"
    return RateLimited(detail, retry_after=exc.retry_after)
