"""Bulk data for the scale rows, written through the service's own store layer.

Making 10,000 realms through the API would generate 10,000 RSA keys (minutes);
the rows measure serving, not generating, so every realm here gets the same
generated key, sealed for that realm and key id exactly as the service seals it.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from service import crypto
from service.keys import sealed_aad
from service.models import KeyRecord, KeyRing, Realm
from service.oauth.registration import new_client
from service.storage.redis import connect

__all__ = ["add_clients", "add_realms", "add_verify_only_keys", "used_memory"]

_CONCURRENCY = 64


async def _bounded(jobs: Iterable[Callable[[], Awaitable[object]]]) -> None:
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def one(job: Callable[[], Awaitable[object]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(one(job) for job in jobs))


@dataclass(frozen=True)
class _Key:
    secret: str
    public: dict[str, object]


def _one_key() -> _Key:
    generated = crypto.generate_key("rs256", 2048)
    assert generated.public_jwk is not None
    return _Key(generated.secret, dict(generated.public_jwk))


def _record(realm: str, key: _Key, sealer: crypto.Sealer, now: float) -> KeyRecord:
    key_id = "jky_" + secrets.token_urlsafe(16)
    return KeyRecord(
        id=key_id,
        kid=key_id,
        algo="rs256",
        status="active",
        created_at=now,
        activated_at=now,
        public_jwk=crypto.public_jwk(key.public, kid=key_id, algo="rs256"),
        sealed_secret=sealer.seal(key.secret.encode(), sealed_aad(realm, key_id)),
    )


def add_realms(url: str, kek: bytes, names: list[str]) -> float:
    """Create ``names`` as realms, each with an active RS256 key; returns seconds taken."""

    async def run() -> None:
        store = connect(url)
        sealer = crypto.Sealer(kek)
        key = _one_key()
        now = time.time()
        try:
            await _bounded(
                functools.partial(
                    store.create_realm, Realm(name, now), [_record(name, key, sealer, now)], now
                )
                for name in names
            )
        finally:
            await store.close()

    begin = time.monotonic()
    asyncio.run(run())
    return time.monotonic() - begin


def add_verify_only_keys(url: str, realm: str, count: int, batch: int = 1000) -> None:
    """``count`` uploaded public keys in ``realm`` (one compare-and-swap per ``batch``)."""

    async def run() -> None:
        store = connect(url)
        public = _one_key().public
        now = time.time()
        try:
            for start in range(0, count, batch):
                records = [
                    KeyRecord(
                        id=f"jky_{n:022d}",
                        kid=f"upload-{n}",
                        algo="rs256",
                        status="verify_only",
                        created_at=now + n / 1000,
                        public_jwk=crypto.public_jwk(public, kid=f"upload-{n}", algo="rs256"),
                    )
                    for n in range(start, min(count, start + batch))
                ]
                version = await store.ring_version(realm)
                assert version is not None
                ring = KeyRing(Realm(realm, now), version)
                assert await store.save_ring(ring, records, [], now)
        finally:
            await store.close()

    asyncio.run(run())


def add_clients(url: str, realm: str, count: int) -> None:
    """``count`` client_secret_basic clients as registration makes them."""

    async def run() -> None:
        store = connect(url)
        now = time.time()
        try:
            await _bounded(
                (lambda: store.put_client(realm, new_client({"client_name": "bench"}, now=now)[0]))
                for _ in range(count)
            )
        finally:
            await store.close()

    asyncio.run(run())


def used_memory(url: str) -> int:
    """The store's ``used_memory`` (bytes, from INFO memory)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()
