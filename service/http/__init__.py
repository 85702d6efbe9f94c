"""The HTTP surface: thin endpoints that parse, call ``keys``, and render.

``problems`` is the one place errors become responses (RFC 9457
problem+json); ``limits`` caps request bodies; ``admin`` is the /v1 API
(``clients`` its clients, ``events`` its audit events);
``wellknown`` publishes JWKS documents; ``health`` answers probes and
``metrics`` scrapes; ``hot`` answers the hot paths ahead of the framework and
``access_log`` logs requests; ``openapi`` serves the OpenAPI document of all of
them.
"""

from service.http._state import Services
from service.http.access_log import AccessLog
from service.http.admin import admin_routes
from service.http.clients import client_routes
from service.http.events import event_routes
from service.http.health import health_routes
from service.http.hot import HotPaths
from service.http.limits import BodySizeLimit
from service.http.metrics import metrics_routes
from service.http.oauth import oauth_routes
from service.http.openapi import openapi_document, openapi_routes
from service.http.problems import exception_handlers
from service.http.wellknown import wellknown_routes

__all__ = [
    "AccessLog",
    "BodySizeLimit",
    "HotPaths",
    "Services",
    "admin_routes",
    "client_routes",
    "event_routes",
    "exception_handlers",
    "health_routes",
    "metrics_routes",
    "oauth_routes",
    "openapi_document",
    "openapi_routes",
    "wellknown_routes",
]
