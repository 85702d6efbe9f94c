"""What a request's log line and metrics say about it beyond the path: the route
template that matched it and the client that authenticated, as scope keys."""

from __future__ import annotations

from typing import Final

from starlette.routing import Match
from starlette.routing import Route as _StarletteRoute
from starlette.types import Scope

__all__ = ["CLIENT_ID", "REALM", "ROUTE", "Route"]

#: The scope key of the matched route's template (``/realms/{realm}/oauth/token``).
ROUTE: Final = "jwks.route"
#: The scope key of the realm of a request the hot paths answer, set as they dispatch it.
REALM: Final = "jwks.realm"
#: The scope key of the client that authenticated, set by the endpoint that checked it.
CLIENT_ID: Final = "jwks.client_id"


class Route(_StarletteRoute):
    """A Starlette route that records its path template in the scope when it matches.

    Logs and metrics group requests by template, not by path: a path names a realm
    and a key, and a metric label per path would grow without bound.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope[ROUTE] = self.path
        return match, child_scope
