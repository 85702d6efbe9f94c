"""Audit events: who changed what in which realm, when, and from where.

Every change to a realm, its keys, its clients or an admin key is one
:class:`AuditEvent`. The storage layer keeps the events in a capped stream per
realm (realm lifecycle and global admin keys also in a global one); this module
defines the values and the one log line each event also becomes (logger
``service.audit``, INFO). An event names the admin key that acted by its id and
never carries a secret: no admin key, no HS256 secret, no client secret, no key
material.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias, get_args

from service.clock import rfc3339

__all__ = [
    "CLI",
    "EVENT_TYPES",
    "SCHEDULER",
    "SYSTEM",
    "Actor",
    "AuditEvent",
    "Detail",
    "EventType",
    "event_object",
    "log_events",
    "new_event",
]

log = logging.getLogger(__name__)

EventType = Literal[
    "realm.created",
    "realm.updated",
    "realm.deleted",
    "key.created",
    "key.uploaded",
    "key.rotated",
    "key.expired",
    "key.deleted",
    "client.registered",
    "client.deleted",
    "client.jwks_replaced",
    "admin_key.created",
]
EVENT_TYPES: Final[tuple[EventType, ...]] = get_args(EventType)
#: A value in an event's details: small and never secret (a kid, an algo, a status).
Detail: TypeAlias = str | int | bool | None


@dataclass(frozen=True)
class Actor:
    """Who makes a change: an admin key's id (never the key), or the service itself.

    ``address`` is the client address of the request (``None`` outside a request);
    behind a proxy it is what the server's proxy-header settings make of it.
    """

    id: str
    address: str | None = None


#: The service on its own behalf (the default realm made at start-up).
SYSTEM: Final = Actor("system")
#: The ``jwks-service`` command line (``admin-key create``, ``rotate``).
CLI: Final = Actor("cli")
#: Scheduled key rotation.
SCHEDULER: Final = Actor("scheduler")


@dataclass(frozen=True)
class AuditEvent:
    """One change. ``subject`` is the key id, client_id or admin key id it concerns;
    ``realm`` is ``None`` for a change outside every realm (a global admin key)."""

    id: str
    type: EventType
    realm: str | None
    actor: str
    address: str | None
    at: float
    subject: str | None = None
    details: Mapping[str, Detail] = field(default_factory=dict, hash=False)


def new_event(
    kind: EventType,
    actor: Actor,
    realm: str | None,
    now: float,
    subject: str | None = None,
    **details: Detail,
) -> AuditEvent:
    """A new event of type ``kind`` with a fresh id."""
    return AuditEvent(
        id="evt_" + secrets.token_urlsafe(12),
        type=kind,
        realm=realm,
        actor=actor.id,
        address=actor.address,
        at=now,
        subject=subject,
        details=details,
    )


def event_object(event: AuditEvent) -> dict[str, Any]:
    """An event as the API shows it and the log writes it (``at`` in RFC 3339)."""
    return {
        "id": event.id,
        "type": event.type,
        "realm": event.realm,
        "actor": event.actor,
        "address": event.address,
        "at": rfc3339(event.at),
        "subject": event.subject,
        "details": dict(event.details),
    }


def log_events(events: Iterable[AuditEvent]) -> None:
    """Write each event as one line of the ``service.audit`` log, once it is stored.

    The message names the change for a reader; the whole event object rides on the
    record as ``event``, which the JSON log format writes as a nested object.
    """
    for event in events:
        document = event_object(event)
        log.info(
            "%s realm=%s actor=%s subject=%s",
            document["type"],
            document["realm"],
            document["actor"],
            document["subject"],
            extra={"event": document},
        )
