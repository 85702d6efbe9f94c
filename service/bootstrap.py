"""Building the running service from settings: store, KEK, key manager, admin keys.

Shared by ``app`` (the HTTP service) and ``cli`` (admin commands), so both act on
the same store with the same code.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from service import crypto
from service.clock import Clock, SystemClock
from service.config import ConfigError, Settings, redacted_url
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
from service.storage import Store, StoreUnavailable
from service.storage.embedded import running_server
from service.storage.redis import connect

__all__ = ["Runtime", "check_kek", "load_or_create_kek", "open_runtime", "wait_for_store"]

log = logging.getLogger(__name__)

#: The pause after the first failed attempt to reach the store; it doubles up to the
#: longest, so a store that is seconds away is found soon and one that is down is not
#: asked more than every few seconds.
_FIRST_PAUSE: Final = 0.5
_LONGEST_PAUSE: Final = 5.0
#: How much of a client error's message a line quotes.
_CAUSE_LENGTH: Final = 160


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
    """The start-up KEK check of :func:`open_runtime`, alone, once the store answers.

    ``serve`` runs it before it starts its workers, so that a store holding secrets
    under a KEK that JWKS_KEK lacks stops the start with one line (a worker's
    failed start would print a traceback). A store that starts with the service (a
    compose file, pods started together) is waited for, ``JWKS_STORE_WAIT`` s at
    most (:func:`wait_for_store`).

    :raises crypto.MissingKek: naming the KEK ids that JWKS_KEK lacks.
    :raises crypto.SealError: JWKS_KEK has another key under the check value's id.
    :raises StoreUnavailable: the store did not answer in time: one line, with the cause.
    """
    async with contextlib.AsyncExitStack() as stack:
        store = _open_store(settings, stack)
        await wait_for_store(store, _store_name(settings), settings.store_wait)
        await check_keks(store, _sealer(settings))


async def wait_for_store(store: Store, where: str, wait: float) -> None:
    """Return once ``store`` answers PING, trying again for up to ``wait`` seconds.

    Each failed attempt logs one warning: ``where`` (never a password), the attempt,
    the pause and the cause. The pauses double from 0.5 s up to 5 s.

    :raises StoreUnavailable: still no answer after ``wait`` s (at once if 0).
    """
    deadline = time.monotonic() + wait
    pause = _FIRST_PAUSE
    attempt = 0
    while True:
        attempt += 1
        try:
            await store.ping()
        except StoreUnavailable as exc:
            cause = _cause(exc)
            left = deadline - time.monotonic()
            if left <= 0:
                tried = (
                    f" after {attempt} attempts in {wait:g} s (JWKS_STORE_WAIT)"
                    if attempt > 1
                    else ""
                )
                raise StoreUnavailable(f"cannot reach {where}{tried}: {cause}") from exc
            wait_now = min(pause, left)
            log.warning(
                "waiting for %s (attempt %d, retrying in %g s): %s",
                where,
                attempt,
                round(wait_now, 1),
                cause,
            )
            await asyncio.sleep(wait_now)
            pause = min(2 * pause, _LONGEST_PAUSE)
        else:
            if attempt > 1:
                log.info("%s answered (attempt %d)", where, attempt)
            return


def _store_name(settings: Settings) -> str:
    if settings.redis_url is None:
        return f"the embedded store in {settings.data_dir}"
    return f"the store at {redacted_url(settings.redis_url)}"


def _cause(exc: StoreUnavailable) -> str:
    """Why the store did not answer, in a few words: the system's reason where there is
    one (``connection refused``), else the client's error and the start of its message.

    A misconfiguration the store layer recognised (TLS, credentials) comes first: its
    chain holds an ``OSError`` too (a certificate failure is errno 1, "operation not
    permitted"), which would name the wrong cause.
    """
    if exc.misconfigured:
        return exc.misconfigured
    error: BaseException | None = exc.__cause__
    for _ in range(10):  # a chain of causes and contexts; never a long one
        if error is None:
            break
        if isinstance(error, OSError) and error.errno is not None:
            text = os.strerror(error.errno) if error.errno > 0 else str(error.strerror)
            return text[:1].lower() + text[1:]
        error = error.__cause__ or error.__context__
    first = exc.__cause__
    if first is None:
        return str(exc)
    message = str(first).splitlines()[0] if str(first) else ""
    if len(message) > _CAUSE_LENGTH:
        message = message[:_CAUSE_LENGTH] + "..."
    return f"{type(first).__name__}: {message}" if message else type(first).__name__


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
