"""How endpoints reach the services the app's lifespan built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from starlette.requests import Request

from service.keys import AdminKeys, KeyManager

__all__ = ["Services", "services"]


class _Pingable(Protocol):
    async def ping(self) -> None: ...


@dataclass(frozen=True)
class Services:
    """What the lifespan hands to every request (Starlette lifespan state)."""

    keys: KeyManager
    admins: AdminKeys
    store: _Pingable
    jwks_max_age: int
    issuer: str


def services(request: Request) -> Services:
    """The services of the app serving ``request``."""
    found: Services = request.state.services
    return found
