"""How endpoints reach the services the app's lifespan built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from starlette.requests import Request

from service.clock import Clock, SystemClock
from service.config import Settings
from service.keys import AdminKeys, AuditLog, KeyManager, Supervised, TokenSigner
from service.oauth.client_auth import ClientAuthenticator
from service.oauth.clients import ClientRegistry
from service.oauth.grants import ClientCredentialsGrant
from service.oauth.introspection import Introspector

__all__ = ["Services", "services"]


class _Pingable(Protocol):
    async def ping(self) -> None: ...


@dataclass(frozen=True)
class Services:
    """What the lifespan hands to every request (Starlette lifespan state)."""

    settings: Settings
    keys: KeyManager
    signer: TokenSigner
    admins: AdminKeys
    store: _Pingable
    clients: ClientRegistry
    authenticator: ClientAuthenticator
    grant: ClientCredentialsGrant
    introspector: Introspector
    audit: AuditLog
    #: The background loops, whose health readiness reports.
    loops: tuple[Supervised, ...] = ()
    #: The loop whose last success is when the caches were last checked against
    #: the store (``None``: readiness takes the process start).
    freshness: Supervised | None = None
    clock: Clock = field(default_factory=SystemClock)

    def cache_age(self) -> float:
        """Seconds since the caches were last confirmed current by the store."""
        if self.freshness is None:
            return 0.0
        checked = self.freshness.last_success or self.freshness.started_at
        return max(0.0, self.clock.now() - checked)

    @property
    def jwks_max_age(self) -> int:
        """Seconds a verifier may cache a JWKS (or an ASAP PEM)."""
        return self.settings.jwks_max_age

    @property
    def issuer(self) -> str:
        """The base URL (the default realm's issuer identifier)."""
        return self.settings.issuer


def services(request: Request) -> Services:
    """The services of the app serving ``request``."""
    found: Services = request.state.services
    return found
