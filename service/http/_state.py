"""How endpoints reach the services the app's lifespan built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from starlette.requests import Request

from service.config import Settings
from service.keys import AdminKeys, AuditLog, KeyManager, TokenSigner
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
