"""Rate limits and failed-authentication lockouts, counted in the store.

Every counter is a fixed window in the store, so that all replicas share it. A
client_secret request (the hot path) waits for no round trip: it is judged on
this process's view of its counters (what the store last said, plus what this
process counted since), and its counts go to the store behind it, batched with
every other request's every ``FLUSH_INTERVAL`` seconds in one script call, whose
answer refreshes the view. So a limit may be passed by what the other replicas
counted in the last interval, and a lockout started on another replica holds
here from the first batch after it (its failures themselves are counted at once:
every wrong secret waits for its count). The admin API and private_key_jwt (whose
jti needs the store anyway) count in the request's own round trip:

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

import asyncio
import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

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
#: Seconds a client request's counts wait, to go to the store with the others.
FLUSH_INTERVAL: Final = 0.05
#: Counters remembered in the view; past it, those whose window ended go first.
MAX_VIEW: Final = 100_000

_Key = tuple[str, str, str | None]
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
        # The view: each counter's count as the store last said, and when its window
        # ends (clock time); the counts not yet sent, and those sent but not answered.
        self._view: dict[_Key, tuple[int, float]] = {}
        self._pending: dict[_Key, list[Any]] = {}  # key -> [quota, hits]
        # Each request's counters, made once per (realm, endpoint, address, client).
        self._plans: dict[tuple[object, ...], list[Quota]] = {}
        self._sent: dict[_Key, int] = {}
        self._flush: asyncio.Task[None] | None = None

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
        plan = (realm, endpoint, address, client_id, known)
        quotas = self._plans.get(plan)
        if quotas is None:
            quotas = self._plan(realm, endpoint, address, client_id, known)
            if len(self._plans) >= MAX_VIEW:
                self._plans.clear()
            self._plans[plan] = quotas
        lim = self._limits
        if not quotas:
            return Admission(realm, client_id)
        now = self._clock.now()
        for quota in quotas:
            self._defer(quota)
        self._schedule()
        for quota in quotas:
            count, ends = self._seen(quota, now)
            if _over(quota, count):
                raise _refusal_of(quota, max(1, math.ceil(ends - now)))
        # The client id's failures are the last count, if they were read.
        failures = self._seen(quotas[-1], now)[0] if client_id and lim.failures else 0
        return Admission(realm, client_id, failures)

    def _plan(
        self, realm: str, endpoint: Endpoint, address: str | None, client_id: str, known: bool
    ) -> list[Quota]:
        quotas = self._requests(realm, endpoint, address, client_id if known else None)
        quotas += self._address_failures(address, "check")
        lim = self._limits
        if client_id and lim.failures:
            quotas.append(Quota(_FAILURES, client_id, realm, "check", lim.failures, lim.lockout))
        return quotas

    async def client_succeeded(self, admission: Admission) -> None:
        """Reset the client id's failures, if it had any."""
        if admission.failures:
            reset = Quota(_FAILURES, admission.client_id, admission.realm, "reset")
            await self._count([reset])
            self._view.pop(_key(reset), None)

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
        tallies = await self._tally(quotas)
        if tallies is None:
            return
        now = self._clock.now()
        for quota, (count, left) in zip(quotas, tallies, strict=True):
            self._view[_key(quota)] = (count, now + left)  # a lockout holds here at once
            if count == quota.limit:  # this failure started the lockout
                who = (
                    f"client id {quota.subject!r} of realm {quota.realm}"
                    if quota.realm
                    else f"address {quota.subject.removeprefix('addr:')}"
                )
                log.warning(
                    "%s locked out for %d s after %d failed authentications",
                    who,
                    quota.window,
                    count,
                )

    # The view, and the counts behind it ----------------------------------------

    def _seen(self, quota: Quota, now: float) -> tuple[int, float]:
        """The counter as this process sees it: the store's last count (while its
        window lasts) plus what was counted here since; and when the window ends."""
        key = _key(quota)
        count, ends = self._view.get(key, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + quota.window
        pending = self._pending.get(key)
        return count + self._sent.get(key, 0) + (pending[1] if pending else 0), ends

    def _defer(self, quota: Quota) -> None:
        """Count ``quota`` (a hit, or a check that refreshes the view) in the next batch."""
        key = _key(quota)
        pending = self._pending.get(key)
        hit = quota.op == "hit"
        if pending is None:
            self._pending[key] = [quota, 1 if hit else 0]
        elif hit:
            pending[1] += 1

    def _schedule(self) -> None:
        if self._flush is None:
            self._flush = asyncio.get_running_loop().create_task(self._send_batch())

    async def _send_batch(self) -> None:
        """After ``FLUSH_INTERVAL``, every pending count in one call; the answers
        become the view."""
        await asyncio.sleep(FLUSH_INTERVAL)
        pending, self._pending = self._pending, {}
        batch = [dataclasses.replace(quota, amount=hits) for quota, hits in pending.values()]
        for quota in batch:
            self._sent[_key(quota)] = quota.amount
        try:
            tallies = await self._tally(batch)
            now = self._clock.now()
            for quota, (count, left) in zip(batch, tallies or (), strict=False):
                self._view[_key(quota)] = (count, now + left)
        finally:
            self._sent.clear()
            self._flush = None
            if len(self._view) > MAX_VIEW:
                self._forget(self._clock.now())
            if self._pending:
                self._schedule()

    def _forget(self, now: float) -> None:
        for key in [k for k, (_, ends) in self._view.items() if ends <= now]:
            del self._view[key]
        while len(self._view) > MAX_VIEW:  # the oldest counters first
            del self._view[next(iter(self._view))]

    async def _tally(self, quotas: Sequence[Quota]) -> list[tuple[int, float]] | None:
        """The counts and windows; ``None`` if the store does not answer (fail open)."""
        now = self._clock.now()
        if not quotas or now < self._resume_at:
            return None
        try:
            return await self._store.tally(quotas)
        except StoreUnavailable as exc:
            if self._resume_at < now - FAIL_OPEN_FOR:  # once per outage, not per request
                log.warning("rate limits not counted, the store did not answer: %s", exc.detail)
            self._resume_at = now + FAIL_OPEN_FOR
            return None

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
    return _refusal_of(exc.quota, exc.retry_after)


def _refusal_of(quota: Quota, retry_after: int) -> RateLimited:
    if quota.scope == _FAILURES:
        detail = "too many failed authentications; retry later"
    else:
        detail = "too many requests; retry later"
    return RateLimited(detail, retry_after=retry_after)


def _key(quota: Quota) -> _Key:
    return quota.scope, quota.subject, quota.realm


def _over(quota: Quota, count: int) -> bool:
    # As the store judges it: a check (a lockout) holds at the limit; a hit is the
    # request itself, so the limit-th is still let through.
    if quota.limit <= 0:
        return False
    return count >= quota.limit if quota.op == "check" else count > quota.limit
