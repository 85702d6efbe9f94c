"""The store on redis.asyncio: a single server, a Cluster, or a master found via Sentinel.

Atomicity comes from Lua scripts (``_scripts``) run on the realm's hash slot; a
failed compare-and-swap is reported, never retried here (the keys layer reloads
and decides again). Connection-level failures become ``StoreUnavailable``; any
other redis error is a bug and propagates.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import secrets
import ssl
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, Final, TypeAlias

import redis.asyncio as aioredis
import redis.exceptions as rex
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from service import metrics
from service.audit import AuditEvent
from service.config import (
    MULTI_HOST_SCHEMES,
    TlsOptions,
    parse_multi_host_url,
    single_server_tls,
)
from service.models import AdminKey, Client, KeyRecord, KeyRing, Page, Realm
from service.storage import _keyspace as ks
from service.storage import _quotas, _scripts
from service.storage._events import DEFAULT_MAX_EVENTS, EventStreams
from service.storage.base import (
    RESUBSCRIBED,
    Change,
    InvalidCursor,
    Quota,
    RealmExists,
    RealmGone,
    StoreUnavailable,
    VersionedClient,
)

__all__ = ["RedisStore", "connect"]

log = logging.getLogger(__name__)

#: Errors that mean "the store is not reachable right now", not "we sent nonsense".
_UNAVAILABLE: Final = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.BusyLoadingError,
    rex.ReadOnlyError,
    rex.TryAgainError,
    rex.ClusterDownError,
    rex.MasterDownError,
    # Cluster: no node reachable or slots uncovered mid-failover.
    rex.RedisClusterException,
    # Sentinel: no sentinel names a reachable master (a ConnectionError already,
    # listed for clarity).
    MasterNotFoundError,
    OSError,
)
#: Cluster errors that are our mistakes, not an outage (the rest of
#: ``RedisClusterException`` means no node answered or a slot has no owner).
_BUGS: Final = (rex.CrossSlotTransactionError, rex.InvalidPipelineStack)
#: Client options shared by every topology.
_TIMEOUTS: Final = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
_RESUBSCRIBE_DELAY: Final = 0.5
_CURSOR: Final = re.compile(r"[0-9]{13}:[A-Za-z0-9_-]{1,64}")


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except _BUGS:
        raise
    except _UNAVAILABLE as exc:
        metrics.store_error(_error_kind(exc))
        why = _misconfigured(exc)
        detail = f"the key store is not reachable: {why}" if why else _UNREACHABLE
        raise StoreUnavailable(detail, misconfigured=why) from exc


_UNREACHABLE: Final = "the key store is not reachable; retry shortly"


def _misconfigured(exc: BaseException) -> str | None:
    """Why ``exc`` will not go away on a retry (TLS, credentials), if it says so.

    The answer is our own words (a caller may see it), never redis-py's message.
    """
    link: BaseException | None = exc
    for _ in range(8):
        if link is None:
            return None
        if isinstance(link, ssl.SSLCertVerificationError):
            return "its TLS certificate did not verify (ssl_ca_certs, ssl_check_hostname)"
        if isinstance(link, rex.AuthenticationError):
            return "it refused the credentials"
        if isinstance(link, MasterNotFoundError) and "AuthenticationError" in str(link):
            # redis-py folds each Sentinel's error into the message, not the chain.
            return "a Sentinel refused the credentials (sentinel_password)"
        link = link.__cause__ or link.__context__
    return None


#: The clients a store runs on: one server (direct or through Sentinel), or a Cluster.
RedisClient: TypeAlias = aioredis.Redis | RedisCluster


def connect(url: str, *, max_events: int = DEFAULT_MAX_EVENTS, **options: Any) -> RedisStore:
    """A store on a new client for ``url``.

    ``redis://``, ``rediss://`` and ``unix://`` name one server;
    ``redis+cluster://host:port,...`` names Cluster seed nodes, and
    ``redis+sentinel://host:port,.../<master>`` the Sentinels that know the master;
    ``rediss+cluster://`` and ``rediss+sentinel://`` are the same over TLS, to every
    node. ``max_events`` caps each audit event stream. ``options`` go to the client
    as they are (tests pick the protocol).

    :raises ValueError: the URL is malformed (``Settings`` has checked it already).
    """
    if url.partition("://")[0] not in MULTI_HOST_SCHEMES:
        # redis-py reads the ssl_* parameters itself, with the names and values the
        # multi-host URLs use; only the warning is ours.
        _warn_if_unverified(single_server_tls(url))
        client = aioredis.from_url(
            url,
            decode_responses=True,
            health_check_interval=30,
            **{**_TIMEOUTS, **options},
        )
        return RedisStore(client, max_events=max_events)
    parsed = parse_multi_host_url(url)
    auth = {"username": parsed.username, "password": parsed.password}
    tls = _tls_kwargs(parsed.tls)
    if parsed.cluster:
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in parsed.hosts],
            decode_responses=True,
            **{**_TIMEOUTS, **tls, **auth, **options},
        )
        return RedisStore(cluster, max_events=max_events)
    assert parsed.service_name is not None
    # The userinfo is the master's; the Sentinels have credentials of their own
    # (none unless the query names them), and the same TLS settings.
    sentinel_auth = {"username": parsed.sentinel_username, "password": parsed.sentinel_password}
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(parsed.hosts), sentinel_kwargs={**_TIMEOUTS, **tls, **sentinel_auth}
    )
    # ssl=True makes the master's pool use SentinelManagedSSLConnection.
    master = sentinel.master_for(
        parsed.service_name,
        decode_responses=True,
        **{**_TIMEOUTS, **tls, **auth, **options},
    )
    return RedisStore(master, also_close=sentinel.sentinels, max_events=max_events)


def _tls_kwargs(tls: TlsOptions | None) -> dict[str, Any]:
    """redis-py's TLS options for ``tls`` (none for plaintext)."""
    if tls is None:
        return {}
    _warn_if_unverified(tls)
    return {
        "ssl": True,
        "ssl_ca_certs": tls.ca_certs,
        "ssl_cert_reqs": "required" if tls.verify else "none",
        "ssl_check_hostname": tls.check_hostname and tls.verify,
        "ssl_certfile": tls.certfile,
        "ssl_keyfile": tls.keyfile,
    }


def _warn_if_unverified(tls: TlsOptions | None) -> None:
    if tls is not None and not tls.verify:
        log.warning(
            "ssl_cert_reqs=none: the key store's TLS certificate is not checked, so "
            "anyone on the network path can pose as the store"
        )


class RedisStore:
    """:class:`service.storage.Store` on an injected ``redis.asyncio`` client.

    ``also_close``: further clients the store owns (a Sentinel's own connections);
    ``max_events``: the length of each audit event stream.
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        also_close: Sequence[aioredis.Redis] = (),
        max_events: int = DEFAULT_MAX_EVENTS,
    ) -> None:
        self._redis = client
        self._also_close = tuple(also_close)
        # A script may touch keys of many slots on one server, not on a Cluster.
        self._per_slot = isinstance(client, RedisCluster)
        sentinel = isinstance(getattr(client, "connection_pool", None), SentinelConnectionPool)
        self._topology = "cluster" if self._per_slot else "sentinel" if sentinel else "single"
        self._events = EventStreams(client, max_events)
        self._load_ring = client.register_script(_scripts.LOAD_RING)
        self._save_ring = client.register_script(_scripts.SAVE_RING)
        self._page_keys = client.register_script(_scripts.PAGE_KEYS)
        self._delete_realm = client.register_script(_scripts.DELETE_REALM)
        self._update_realm = client.register_script(_scripts.UPDATE_REALM)
        self._put_client = client.register_script(_scripts.PUT_CLIENT)
        self._delete_client = client.register_script(_scripts.DELETE_CLIENT)
        self._get_client = client.register_script(_scripts.GET_CLIENT)
        self._add_admin_key = client.register_script(_scripts.ADD_ADMIN_KEY)
        self._count_script = client.register_script(_scripts.COUNT)
        self._claim_client_keys = client.register_script(_scripts.CLAIM_CLIENT_KEYS)
        self._release_client_keys = client.register_script(_scripts.RELEASE_CLIENT_KEYS)

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the server answers PING."""
        with _translated():
            await self._redis.ping()

    async def close(self) -> None:
        """Close the client and its pool."""
        await self._redis.aclose()
        for other in self._also_close:
            await other.aclose()

    # Realms ---------------------------------------------------------------

    async def create_realm(
        self,
        realm: Realm,
        keys: Sequence[KeyRecord],
        now: float,
        *,
        events: Sequence[AuditEvent] = (),
    ) -> None:
        """Create a realm and its first keys in one script, which appends ``events`` to
        the realm's stream; ``RealmExists`` if taken."""
        with _translated():
            # The registry entry goes first: a crash before the script leaves a
            # name that listing skips, never a realm that listing misses.
            await self._redis.zadd(ks.REALMS, {realm.name: 0})
            result = await self._save(
                realm.name, "", json.dumps(asdict(realm)), keys, (), now, events
            )
        if result != "ok":
            raise RealmExists(f"realm {realm.name!r} already exists")

    async def delete_realm(self, name: str) -> bool:
        """Delete a realm's records, indexes, versions and meta in one script; then the
        records of its admin keys and its registry entry.

        The admin keys are revoked by the script: each names the incarnation it was
        made for, which goes with the meta. Their records lie outside the realm's
        slot (a key is found by its digest alone), so on a Cluster no script can
        delete them with the realm; they are deleted right after it, as garbage.
        """
        with _translated():
            raw = await self._delete_realm(
                keys=[
                    ks.meta(name),
                    ks.version(name),
                    ks.key_index(name),
                    ks.client_index(name),
                    ks.client_version(name),
                    ks.admin_key_index(name),
                    ks.events(name),
                    ks.key_owners(name),
                ],
                args=[
                    ks.key_record_prefix(name),
                    ks.CHANGES_CHANNEL,
                    name,
                    ks.client_record_prefix(name),
                    ks.CLIENT_CHANGES_CHANNEL,
                ],
            )
            result = json.loads(raw)
            # cjson encodes an empty list as {}.
            digests = [str(d) for d in result.get("admin_keys") or ()]
            if digests:
                # One DEL per key in a plain pipeline: on a Cluster they lie in many slots.
                async with self._redis.pipeline(transaction=False) as pipe:
                    for digest in digests:
                        pipe.delete(ks.admin_key(digest))
                    await pipe.execute()
            await self._redis.zrem(ks.REALMS, name)
        return bool(result["deleted"])

    async def get_realm(self, name: str) -> Realm | None:
        """GET of the realm's meta."""
        with _translated():
            raw = await self._redis.get(ks.meta(name))
        return Realm(**json.loads(raw)) if raw else None

    async def update_realm(self, realm: Realm, *, events: Sequence[AuditEvent] = ()) -> None:
        """Replace a realm's settings (and append ``events``); ``RealmGone`` if it does not
        exist."""
        version = secrets.token_hex(8)
        with _translated():
            result = await self._update_realm(
                keys=[ks.meta(realm.name), ks.version(realm.name), ks.events(realm.name)],
                args=[
                    json.dumps(asdict(realm)),
                    version,
                    ks.CHANGES_CHANNEL,
                    f"{realm.name} {version}",
                    *self._events.script_args(events),
                ],
            )
        if result != "ok":
            raise RealmGone(f"realm {realm.name!r} does not exist")

    async def list_realms(self, limit: int, cursor: str | None) -> Page[Realm]:
        """Realms in name order; names whose realm is gone are skipped."""
        with _translated():
            start = f"({cursor}" if cursor else "-"
            found = await self._redis.zrangebylex(ks.REALMS, start, "+", 0, limit + 1)
            names = [str(n) for n in found]
            page, more = names[:limit], len(names) > limit
            # One GET per realm in a plain pipeline, not MGET: on a Cluster the
            # realms' keys lie in different slots.
            metas: list[Any] = []
            if page:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for n in page:
                        pipe.get(ks.meta(n))
                    metas = await pipe.execute()
        realms = tuple(Realm(**json.loads(m)) for m in metas if m)
        return Page(realms, page[-1] if more else None)

    # Key rings ------------------------------------------------------------

    async def load_ring(self, realm: str) -> KeyRing | None:
        """One script reads the meta, version and every record consistently."""
        with _translated():
            raw = await self._load_ring(
                keys=[ks.meta(realm), ks.version(realm), ks.key_index(realm)],
                args=[ks.key_record_prefix(realm)],
            )
        data = json.loads(raw)
        if "meta" not in data:
            return None
        records = tuple(_decode_key(r) for r in data.get("records") or ())
        return KeyRing(Realm(**json.loads(data["meta"])), data["version"], records)

    async def save_ring(
        self,
        ring: KeyRing,
        put: Sequence[KeyRecord],
        delete: Sequence[KeyRecord],
        now: float,
        *,
        events: Sequence[AuditEvent] = (),
    ) -> bool:
        """Apply ``put`` and ``delete`` (and append ``events``) if the ring is still at
        ``ring.version``."""
        with _translated():
            result = await self._save(ring.realm.name, ring.version, "", put, delete, now, events)
        if result == "gone":
            raise RealmGone(f"realm {ring.realm.name!r} was deleted")
        return result == "ok"

    async def _save(
        self,
        realm: str,
        expected: str,
        create_meta: str,
        put: Sequence[KeyRecord],
        delete: Sequence[KeyRecord],
        now: float,
        events: Sequence[AuditEvent],
    ) -> str:
        ops: list[list[Any]] = [
            ["put", _member(k.created_at, k.id), k.id, _encode_key(k), _ttl_ms(k, now)] for k in put
        ]
        ops += [["del", _member(k.created_at, k.id), k.id, "", 0] for k in delete]
        version = secrets.token_hex(8)
        result: str = await self._save_ring(
            keys=[ks.meta(realm), ks.version(realm), ks.key_index(realm), ks.events(realm)],
            args=[
                expected,
                version,
                ks.key_record_prefix(realm),
                create_meta,
                ks.CHANGES_CHANNEL,
                f"{realm} {version}",
                json.dumps(ops),
                *self._events.script_args(events),
            ],
        )
        return result

    async def ring_version(self, realm: str) -> str | None:
        """GET of the version key (it exists exactly while the realm does)."""
        with _translated():
            version = await self._redis.get(ks.version(realm))
        return None if version is None else str(version)

    async def ring_versions(self, realms: Sequence[str]) -> list[str | None]:
        """GETs of the version keys in one pipeline (not MGET: they lie in many slots)."""
        values = await self._get_all(map(ks.version, realms))
        return [None if v is None else str(v) for v in values]

    async def _get_all(self, names: Iterable[str]) -> list[Any]:
        keys = list(names)
        if not keys:
            return []
        with _translated():
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in keys:
                    pipe.get(name)
                values: list[Any] = await pipe.execute()
        return values

    async def page_keys(self, realm: str, limit: int, cursor: str | None) -> Page[KeyRecord] | None:
        """Newest first; the cursor is the last member returned (opaque to callers)."""
        page = await self._page(
            ks.key_index(realm), ks.key_record_prefix(realm), realm, limit, cursor
        )
        return None if page is None else Page(tuple(map(_decode_key, page.items)), page.next_cursor)

    async def _page(
        self, index: str, prefix: str, realm: str, limit: int, cursor: str | None
    ) -> Page[str] | None:
        if cursor is not None and not _CURSOR.fullmatch(cursor):
            raise InvalidCursor("cursor is not one this API returned")
        with _translated():
            raw = await self._page_keys(
                keys=[ks.meta(realm), index], args=[prefix, cursor or "", limit]
            )
        data = json.loads(raw)
        if not data["found"]:
            return None
        records = tuple(data.get("records") or ())
        return Page(records, data["last"] if data["more"] and records else None)

    async def get_key(self, realm: str, key_id: str) -> KeyRecord | None:
        """GET of one record."""
        with _translated():
            raw = await self._redis.get(ks.key_record_prefix(realm) + key_id)
        return _decode_key(str(raw)) if raw else None

    # Clients and assertion replay ----------------------------------------------

    async def put_client(
        self, realm: str, client: Client, *, events: Sequence[AuditEvent] = ()
    ) -> Change:
        """Create or replace a client record (and append ``events``); ``RealmGone`` if the
        realm does not exist."""
        version = secrets.token_hex(8)
        with _translated():
            previous = await self._put_client(
                keys=[
                    ks.meta(realm),
                    ks.client_index(realm),
                    ks.client_version(realm),
                    ks.events(realm),
                ],
                args=[
                    ks.client_record_prefix(realm),
                    _member(client.client_id_issued_at, client.client_id),
                    client.client_id,
                    json.dumps(asdict(client), separators=(",", ":")),
                    version,
                    ks.CLIENT_CHANGES_CHANNEL,
                    f"{realm} {client.client_id}",
                    *self._events.script_args(events),
                ],
            )
        if previous is None:
            raise RealmGone(f"realm {realm!r} does not exist")
        return Change(realm, True, client.client_id, version, str(previous))

    async def get_client(self, realm: str, client_id: str) -> Client | None:
        """GET of one client record."""
        with _translated():
            raw = await self._redis.get(ks.client_record_prefix(realm) + client_id)
        return _decode_client(str(raw)) if raw else None

    async def load_client(self, realm: str, client_id: str) -> VersionedClient:
        """The client record and the realm's client version, read by one script."""
        with _translated():
            raw = await self._get_client(
                keys=[ks.client_version(realm), ks.client_record_prefix(realm) + client_id]
            )
        data = json.loads(raw)
        record = data["record"]
        return VersionedClient(_decode_client(record) if record else None, data["version"])

    async def client_versions(self, realms: Sequence[str]) -> list[str]:
        """GETs of the client versions in one pipeline."""
        values = await self._get_all(map(ks.client_version, realms))
        return ["" if v is None else str(v) for v in values]

    async def page_clients(self, realm: str, limit: int, cursor: str | None) -> Page[Client] | None:
        """Clients newest first, like :meth:`page_keys`."""
        page = await self._page(
            ks.client_index(realm), ks.client_record_prefix(realm), realm, limit, cursor
        )
        return (
            None if page is None else Page(tuple(map(_decode_client, page.items)), page.next_cursor)
        )

    async def delete_client(
        self, realm: str, client: Client, *, events: Sequence[AuditEvent] = ()
    ) -> Change | None:
        """Delete a client record and its index entry (appending ``events`` if it was there)."""
        version = secrets.token_hex(8)
        with _translated():
            previous = await self._delete_client(
                keys=[ks.client_index(realm), ks.client_version(realm), ks.events(realm)],
                args=[
                    ks.client_record_prefix(realm),
                    _member(client.client_id_issued_at, client.client_id),
                    client.client_id,
                    version,
                    ks.CLIENT_CHANGES_CHANNEL,
                    f"{realm} {client.client_id}",
                    *self._events.script_args(events),
                ],
            )
        if previous is None:
            return None
        return Change(realm, True, client.client_id, version, str(previous))

    async def count_clients(self, realm: str) -> int:
        """ZCARD of the realm's client index."""
        with _translated():
            return int(await self._redis.zcard(ks.client_index(realm)))

    async def count_realms(self) -> int:
        """ZCARD of the realm registry."""
        with _translated():
            return int(await self._redis.zcard(ks.REALMS))

    async def claim_client_keys(
        self, realm: str, client_id: str, thumbprints: Sequence[str]
    ) -> str | None:
        """All of the thumbprints for the client, or the other client that owns one."""
        if not thumbprints:
            return None
        with _translated():
            owner = await self._claim_client_keys(
                keys=[ks.key_owners(realm)],
                args=[ks.client_record_prefix(realm), client_id, *thumbprints],
            )
        return str(owner) if owner else None

    async def release_client_keys(
        self, realm: str, client_id: str, thumbprints: Sequence[str]
    ) -> None:
        """HDEL of the thumbprints the client still owns, in one script."""
        if thumbprints:
            with _translated():
                await self._release_client_keys(
                    keys=[ks.key_owners(realm)], args=[client_id, *thumbprints]
                )

    async def consume_jti(
        self, realm: str, client_id: str, jti: str, ttl: float, quotas: Sequence[Quota] = ()
    ) -> bool:
        """Record a jti as used for ``ttl`` seconds: ``SET NX PX``, one atomic step;
        ``quotas`` are counted in the same round trip (by the same script).

        :returns: ``False`` if it was already used (a replay).
        :raises QuotaExceeded: one of ``quotas`` is exceeded.
        """
        digest = hashlib.sha256(f"{client_id}\0{jti}".encode()).hexdigest()
        key, px = ks.jti(realm, digest), max(1, math.ceil(ttl * 1000))
        if not quotas:
            with _translated():
                return bool(await self._redis.set(key, "", nx=True, px=px))
        calls = _quotas.plan(quotas, per_slot=self._per_slot, jti=_quotas.Jti(key, px))
        with _translated():
            replies = await self._count_calls(calls)
        return _quotas.decode(quotas, calls, replies)[1]

    async def count(self, quotas: Sequence[Quota]) -> list[int]:
        """Apply the quotas' ops: one script call (on a Cluster, one per hash slot, in
        one pipeline).

        :raises QuotaExceeded: the first quota exceeded.
        """
        if not quotas:
            return []
        calls = _quotas.plan(quotas, per_slot=self._per_slot)
        with _translated():
            replies = await self._count_calls(calls)
        return _quotas.decode(quotas, calls, replies)[0]

    async def tally(self, quotas: Sequence[Quota]) -> list[tuple[int, float]]:
        """Apply the quotas' ops like :meth:`count`; each count and the seconds left in
        its window, exceeded or not."""
        if not quotas:
            return []
        calls = _quotas.plan(quotas, per_slot=self._per_slot)
        with _translated():
            replies = await self._count_calls(calls)
        return _quotas.tallies(quotas, calls, replies)

    async def _count_calls(self, calls: Sequence[_quotas.Call]) -> list[Any]:
        if len(calls) == 1:
            call = calls[0]
            return [await self._count_script(keys=call.keys, args=[call.spec])]
        async with self._redis.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.eval(*call.command())
            replies: list[Any] = await pipe.execute()
        return replies

    async def changes(self) -> AsyncIterator[Change]:
        """Subscribe to both change channels, resubscribing after connection loss.

        A resubscribe counts as a reconnect, and as a failover if the master's address
        changed meanwhile (Sentinel's pool learns it on connecting; a Sentinel
        failover closes every client connection of the servers it reconfigures).
        """
        lost, master = False, None
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                if isinstance(self._redis, RedisCluster):
                    # ClusterPubSub picks its node from the slot table, which an
                    # unused client has not loaded yet. Classic PUBLISH reaches
                    # every node, so whichever node it picks hears every change.
                    await self._redis.initialize()
                await pubsub.subscribe(ks.CHANGES_CHANNEL, ks.CLIENT_CHANGES_CHANNEL)
                # Read both confirmations first: a refusal (NOPERM for a user whose
                # ACL forbids SUBSCRIBE) then raises here, before RESUBSCRIBED tells
                # the watcher it is subscribed.
                for _channel in range(2):
                    await pubsub.get_message(timeout=_TIMEOUTS["socket_timeout"])
                lost, master = self._resubscribed(lost, master), self._master()
                yield RESUBSCRIBED
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        yield _change(str(message["channel"]), str(message["data"]))
            except _BUGS:
                raise
            except _UNAVAILABLE as exc:
                metrics.store_error(_error_kind(exc))
                lost = True
                log.warning("change subscription lost (%s); resubscribing", type(exc).__name__)
                await asyncio.sleep(_RESUBSCRIBE_DELAY)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _master(self) -> object:
        """The master's address as the Sentinel pool last found it (else ``None``)."""
        return getattr(getattr(self._redis, "connection_pool", None), "master_address", None)

    def _resubscribed(self, lost: bool, master: object) -> bool:
        """Count a reconnect (if the subscription was ``lost``) and a failover (if the
        master is no longer at ``master``); returns ``False``: nothing is lost now."""
        if lost:
            metrics.store_reconnected(self._topology)
            if master is not None and self._master() != master:
                metrics.store_failover(self._topology)
        return False

    # Admin keys and the KEK check ------------------------------------------

    async def put_admin_key(
        self, digest: str, key: AdminKey, *, events: Sequence[AuditEvent] = ()
    ) -> None:
        """SET of the admin key record under its digest; a realm-scoped key is first
        added to its realm's index, by a script that checks the incarnation.

        ``events`` go to the realm's stream in that script; a global key's, to the
        global stream right after the SET (two slots: no script spans them).
        """
        with _translated():
            if key.realm is not None:
                # The index first: it never misses a stored key. A key indexed into a
                # realm deleted just after is refused anyway (its incarnation is gone).
                added = await self._add_admin_key(
                    keys=[ks.meta(key.realm), ks.admin_key_index(key.realm), ks.events(key.realm)],
                    args=[digest, key.incarnation or "", *self._events.script_args(events)],
                )
                if not int(added):
                    raise RealmGone(f"realm {key.realm!r} does not exist")
            await self._redis.set(ks.admin_key(digest), json.dumps(asdict(key)))
            if key.realm is None:
                await self._events.append_global(events)

    async def get_admin_key(self, digest: str) -> AdminKey | None:
        """GET of the admin key record."""
        with _translated():
            raw = await self._redis.get(ks.admin_key(digest))
        return AdminKey(**json.loads(raw)) if raw else None

    async def kek_check(self, value: str) -> str:
        """SET NX then GET: the first KEK to reach the store wins."""
        with _translated():
            await self._redis.set(ks.KEK_CHECK, value, nx=True)
            stored = await self._redis.get(ks.KEK_CHECK)
        return str(stored)

    async def replace_kek_check(self, value: str) -> None:
        """SET of the KEK check."""
        with _translated():
            await self._redis.set(ks.KEK_CHECK, value)

    async def kek_ids(self) -> frozenset[str]:
        """SMEMBERS of the KEK id set."""
        with _translated():
            members = await self._redis.smembers(ks.KEK_IDS)
        return frozenset(str(m) for m in members)

    async def add_kek_id(self, kek_id: str) -> None:
        """SADD to the KEK id set."""
        with _translated():
            await self._redis.sadd(ks.KEK_IDS, kek_id)

    async def remove_kek_ids(self, kek_ids: Sequence[str]) -> None:
        """SREM from the KEK id set."""
        if kek_ids:
            with _translated():
                await self._redis.srem(ks.KEK_IDS, *kek_ids)

    # Audit events ------------------------------------------------------------

    async def append_global_events(self, events: Sequence[AuditEvent]) -> None:
        """XADD to the global stream, capped like the realms' streams."""
        with _translated():
            await self._events.append_global(events)

    async def page_events(
        self, realm: str | None, limit: int, cursor: str | None
    ) -> Page[AuditEvent] | None:
        """A realm's events (the global stream's for ``None``) newest first; the cursor
        is the last entry's stream id. ``None`` if there is no such realm."""
        with _translated():
            return await self._events.page(realm, limit, cursor)


_ErrorTypes: TypeAlias = type[BaseException] | tuple[type[BaseException], ...]
#: What the metrics call each unreachable-store error (the first that matches).
_ERROR_KINDS: Final[tuple[tuple[str, _ErrorTypes], ...]] = (
    ("timeout", (rex.TimeoutError, TimeoutError)),
    ("loading", rex.BusyLoadingError),
    ("auth", rex.AuthenticationError),
    ("no_master", MasterNotFoundError),
    ("connection", rex.ConnectionError),
    ("readonly", rex.ReadOnlyError),
    ("tryagain", rex.TryAgainError),
    ("master_down", rex.MasterDownError),
    ("cluster_down", rex.ClusterDownError),
    ("cluster", rex.RedisClusterException),
    ("os", OSError),
)


def _error_kind(exc: BaseException) -> str:
    return next((kind for kind, types in _ERROR_KINDS if isinstance(exc, types)), "other")


def _change(channel: str, data: str) -> Change:
    realm, _, rest = data.partition(" ")
    if channel == ks.CLIENT_CHANGES_CHANNEL:
        if not rest:
            return Change(realm, clients=True)  # every client of the realm went
        client_id, version, previous = [*rest.split(" "), "", ""][:3]
        # previous is '' when the realm had no client version before.
        return Change(realm, True, client_id, version or None, previous)
    return Change(realm, version=rest or None)


def _member(created_at: float, record_id: str) -> str:
    # Zero-padded milliseconds then id: lexical order is creation order, ties
    # broken by id, so a cursor is exact and pages never skip or repeat.
    return f"{round(created_at * 1000):013d}:{record_id}"


def _ttl_ms(key: KeyRecord, now: float) -> int:
    if key.expires_at is None:
        return 0
    return max(1, round((key.expires_at - now) * 1000))


def _encode_key(key: KeyRecord) -> str:
    data = asdict(key)
    data["public_jwk"] = dict(key.public_jwk) if key.public_jwk is not None else None
    return json.dumps(data, separators=(",", ":"))


def _decode_key(raw: str) -> KeyRecord:
    return KeyRecord(**json.loads(raw))


def _decode_client(raw: str) -> Client:
    data = json.loads(raw)
    for name in _CLIENT_LISTS:
        if name in data:  # records stored before a list existed take its default
            data[name] = tuple(data[name])
    return Client(**data)


_CLIENT_LISTS: Final = (
    "grant_types",
    "jwks",
    "allowed_rooms",
    "allowed_features",
    "allowed_audiences",
    "allowed_tenants",
)
