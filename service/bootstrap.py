"""Building the running service from settings: store, KEK, key manager, admin keys.

Shared by ``app`` (the HTTP service) and ``cli`` (admin commands), so both act on
the same store with the same code.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from service import crypto
from service.clock import Clock, SystemClock
from service.config import ConfigError, Settings
from service.keys import (
    REVALIDATE_INTERVAL,
    AdminKeys,
    AuditLog,
    ChangeWatcher,
    KeyManager,
    TokenSigner,
    check_keks,
)
from service.oauth.client_auth import ClientAuthenticator
from service.oauth.client_cache import ClientCache
from service.oauth.clients import ClientRegistry
from service.oauth.grants import ClientCredentialsGrant
from service.oauth.introspection import Introspector
from service.ratelimit import RateLimiter, RateLimits
from service.storage import Store
from service.storage.embedded import running_server
from service.storage.redis import connect

__all__ = ["Runtime", "check_kek", "load_or_create_kek", "open_runtime"]


@dataclass(frozen=True)
class Runtime:
    """The long-lived collaborators of a running service."""

    store: Store
    keys: KeyManager
    signer: TokenSigner
    admins: AdminKeys
    clients: ClientRegistry
    authenticator: ClientAuthenticator
    grant: ClientCredentialsGrant
    introspector: Introspector
    audit: AuditLog
    #: Keeps the key-ring and client caches current; the app runs it.
    watcher: ChangeWatcher


def load_or_create_kek(data_dir: Path) -> bytes:
    """The KEK in ``<data_dir>/kek`` (base64, mode 0600), created on first use."""
    path = data_dir / "kek"
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_kek(path)
    kek = crypto.new_kek()
    with os.fdopen(fd, "w") as out:
        out.write(base64.b64encode(kek).decode() + "\n")
    return kek


def _read_kek(path: Path) -> bytes:
    try:
        kek = base64.b64decode(path.read_text().strip(), validate=True)
    except ValueError as exc:
        raise ConfigError("JWKS_KEK", f"{path} is not base64") from exc
    if len(kek) != 32:
        raise ConfigError("JWKS_KEK", f"{path} does not hold 32 bytes")
    return kek


def _sealer(settings: Settings) -> crypto.Sealer:
    """Seals under JWKS_KEK's first KEK (else the data dir's, id ``0``), opens under any."""
    if settings.kek is None:
        return crypto.Sealer(load_or_create_kek(settings.data_dir))
    return crypto.Sealer(settings.kek, kek_id=settings.kek_id, previous=settings.previous_keks)


def _open_store(settings: Settings, stack: contextlib.AsyncExitStack) -> Store:
    """A store for ``settings`` (starting the embedded server if none runs), closed with
    ``stack``."""
    if settings.redis_url is None:
        url = stack.enter_context(running_server(settings.data_dir, settings.redis_server_bin))
    else:
        url = settings.redis_url
    redis_store = connect(url, max_events=settings.audit_max_events)
    stack.push_async_callback(redis_store.close)
    return redis_store


async def check_kek(settings: Settings) -> None:
    """The start-up KEK check of :func:`open_runtime`, alone.

    ``serve`` runs it before it starts its workers, so that a store holding secrets
    under a KEK that JWKS_KEK lacks stops the start with one line (a worker's
    failed start would print a traceback).

    :raises crypto.MissingKek: naming the KEK ids that JWKS_KEK lacks.
    :raises crypto.SealError: JWKS_KEK has another key under the check value's id.
    :raises StoreUnavailable:
    """
    async with contextlib.AsyncExitStack() as stack:
        await check_keks(_open_store(settings, stack), _sealer(settings))


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings, *, store: Store | None = None, clock: Clock | None = None
) -> AsyncIterator[Runtime]:
    """Connect (starting the embedded server if needed), check the KEK, ensure ``default``.

    An injected ``store`` is used as is and not closed here.
    """
    clock = clock or SystemClock()
    async with contextlib.AsyncExitStack() as stack:
        if store is None:
            store = _open_store(settings, stack)
        keys = KeyManager(
            store,
            _sealer(settings),
            clock,
            grace=settings.key_grace,
            rsa_bits=settings.rsa_bits,
            publish_lead=settings.publish_lead,
            max_cached_realms=settings.cache_realms,
        )
        await keys.check_kek()
        await keys.ensure_default_realm()
        clients = ClientRegistry(
            store, clock, ClientCache(store, max_clients=settings.cache_clients)
        )
        signer = TokenSigner(keys, clock, offload_rsa_bits=settings.sign_thread_min_bits)
        stack.callback(signer.close)
        # A replica that missed a message must catch up well within the lead, or it
        # could serve a JWKS without a key that already signs.
        watcher = ChangeWatcher(
            store,
            [keys.cache, clients.cache],
            interval=min(REVALIDATE_INTERVAL, settings.publish_lead / 2),
            clock=clock,
        )
        # One limiter for clients and admin keys: they share the per-address lockout.
        limiter = RateLimiter(store, clock, RateLimits.from_settings(settings))
        yield Runtime(
            store=store,
            keys=keys,
            signer=signer,
            admins=AdminKeys(store, clock, settings.bootstrap_admin_key, limiter),
            clients=clients,
            authenticator=ClientAuthenticator(clients, store, clock, limiter),
            grant=ClientCredentialsGrant(signer, clock, settings.token_ttl),
            introspector=Introspector(signer, clients, clock),
            audit=AuditLog(store),
            watcher=watcher,
        )
