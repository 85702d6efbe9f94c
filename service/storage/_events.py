"""The audit event streams: one capped Redis stream per realm, and a global one.

A realm's events are appended by the Lua script that makes the change (see
``_scripts._EMIT``), in the realm's slot; this module encodes them for those
scripts, appends to the global stream (``jwks:events``, its own slot) and reads
pages newest first. The stream entry id is the cursor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Final, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from service.audit import AuditEvent
from service.config import DEFAULT_AUDIT_MAX_EVENTS
from service.models import Page
from service.storage import _keyspace as ks
from service.storage import _scripts
from service.storage.base import InvalidCursor

__all__ = ["DEFAULT_MAX_EVENTS", "EventStreams"]

#: Events kept per stream (JWKS_AUDIT_MAX_EVENTS); the oldest go first.
DEFAULT_MAX_EVENTS: Final = DEFAULT_AUDIT_MAX_EVENTS
#: A stream entry id, ``<ms>-<seq>``.
_CURSOR: Final = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")

_Client: TypeAlias = aioredis.Redis | RedisCluster


class EventStreams:
    """Appends to and pages through the event streams, each capped at ``max_events``."""

    def __init__(self, client: _Client, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self._redis = client
        self._max_events = max_events
        self._page = client.register_script(_scripts.PAGE_EVENTS)

    def script_args(self, events: Sequence[AuditEvent]) -> list[Any]:
        """The cap and the events, as the last two ARGV of a script that emits them."""
        return [self._max_events, _encode(events)]

    async def append_global(self, events: Sequence[AuditEvent]) -> None:
        """XADD each event to the global stream, trimmed exactly to the cap."""
        if not events:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(
                    ks.EVENTS,
                    {"event": _encode_one(event)},
                    maxlen=self._max_events,
                    approximate=False,
                )
            await pipe.execute()

    async def page(
        self, realm: str | None, limit: int, cursor: str | None
    ) -> Page[AuditEvent] | None:
        """Events newest first from ``realm``'s stream (the global one for ``None``);
        ``None`` if there is no such realm.

        :raises InvalidCursor:
        """
        if cursor is not None and not _CURSOR.fullmatch(cursor):
            raise InvalidCursor("cursor is not one this API returned")
        keys = [ks.EVENTS] if realm is None else [ks.events(realm), ks.meta(realm)]
        raw = await self._page(keys=keys, args=[cursor or "", limit])
        data = json.loads(raw)
        if not data["found"]:
            return None
        # cjson encodes an empty list as {}.
        ids, events = list(data.get("ids") or ()), list(data.get("events") or ())
        more = len(ids) > limit
        items = tuple(_decode(e) for e in events[:limit])
        return Page(items, str(ids[limit - 1]) if more else None)


def _encode_one(event: AuditEvent) -> str:
    data = asdict(event)
    data["details"] = dict(event.details)
    return json.dumps(data, separators=(",", ":"))


def _encode(events: Sequence[AuditEvent]) -> str:
    # A list of JSON strings, not of objects: the script passes each on as it is,
    # and cjson never re-encodes (and rounds) a timestamp.
    return json.dumps([_encode_one(e) for e in events])


def _decode(raw: str) -> AuditEvent:
    return AuditEvent(**json.loads(raw))
