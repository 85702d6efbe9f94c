"""The background loops survive their failures: each failure is logged with its
traceback, backed off and retried, and the loop goes on doing its work.

On the single test server (the failures are injected, the topology does not
matter): a real ACL that forbids SUBSCRIBE, a revalidation and a rotation pass
that raise.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from service import crypto
from service.errors import Unavailable
from service.keys import ChangeWatcher, GenerateKey, KeyManager, RotationScheduler, Supervised
from service.models import Algo
from service.storage import StoreUnavailable
from service.storage.redis import RedisStore, connect
from tests.conftest import KEK, FakeClock

WAIT = 10.0


def manager(store: RedisStore, clock: FakeClock | None = None) -> KeyManager:
    return KeyManager(store, crypto.Sealer(base64.b64decode(KEK)), clock or FakeClock(), grace=3600)


@pytest.fixture
async def single(redis_client: redis.Redis, redis_url: str) -> AsyncIterator[RedisStore]:
    """A store on the flushed single test server (not each topology)."""
    s = connect(redis_url)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def no_subscribe(redis_client: redis.Redis, redis_url: str) -> Iterator[tuple[str, str]]:
    """An ACL user that may do everything but SUBSCRIBE; yields (its URL, its name)."""
    name = f"watcher-{uuid.uuid4().hex[:8]}"
    redis_client.execute_command(
        "ACL", "SETUSER", name, "on", ">pw", "~*", "&*", "+@all", "-subscribe"
    )
    parts = urlsplit(redis_url)
    url = urlunsplit(parts._replace(netloc=f"{name}:pw@{parts.hostname}:{parts.port}"))
    try:
        yield url, name
    finally:
        redis_client.execute_command("ACL", "DELUSER", name)


async def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(run: Callable[[], Awaitable[None]]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.ensure_future(run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def tracebacks(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage() and r.exc_info is not None]


async def test_a_forbidden_subscribe_is_retried_until_allowed(
    single: RedisStore,
    no_subscribe: tuple[str, str],
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """NOPERM on SUBSCRIBE used to end the watcher (and its revalidation) for good."""
    url, name = no_subscribe
    m = manager(single)
    await m.create_realm("acme")
    restricted = connect(url)
    try:
        watched = manager(restricted)
        assert await watched.cache.get("acme") is not None
        # No periodic check within the test: only the feed can bring the change.
        watcher = ChangeWatcher(restricted, [watched.cache], interval=3600)
        async with running(watcher.run) as task:
            await eventually(lambda: watcher.subscription.failures >= 2, "SUBSCRIBE refused")
            assert not task.done()
            redis_client.execute_command("ACL", "SETUSER", name, "+subscribe")
            await eventually(lambda: watcher.subscription.last_success is not None, "subscribed")
            assert watcher.subscription.failures == 0 and watcher.subscription.healthy
            await m.create_key("acme", GenerateKey("es256"))  # another replica's change
            await eventually(lambda: watched.cache.current("acme") is None, "change heard")
    finally:
        await restricted.close()
    logged = tracebacks(caplog, "cache-watch subscription failed")
    assert logged and logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], redis.exceptions.NoPermissionError)


async def test_revalidation_goes_on_when_it_raises_and_the_feed_is_forbidden(
    single: RedisStore,
    no_subscribe: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The version check is its own loop: it recovers from its failures and keeps the
    caches current while the subscription keeps failing."""
    url, _name = no_subscribe
    m = manager(single)
    await m.create_realm("acme")
    restricted = connect(url)
    try:
        watched = manager(restricted)
        assert await watched.cache.get("acme") is not None
        failures = [RuntimeError("injected"), RuntimeError("injected again")]

        class Flaky:
            def changed(self, change: object) -> None:
                pass

            async def revalidate(self) -> None:
                if failures:
                    raise failures.pop(0)
                await watched.cache.revalidate()

        watcher = ChangeWatcher(restricted, [Flaky()], interval=0.1)
        async with running(watcher.run):
            await eventually(lambda: not failures, "both failures injected")
            await m.create_key("acme", GenerateKey("es256"))
            await eventually(lambda: watched.cache.current("acme") is None, "change found")
            assert watcher.revalidation.healthy and watcher.revalidation.failures == 0
            assert watcher.subscription.failures >= 1  # still refused all along
    finally:
        await restricted.close()
    assert len(tracebacks(caplog, "cache revalidation failed")) == 2


async def test_a_rotation_pass_that_raises_is_retried(
    single: RedisStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    m = manager(single)
    await m.ensure_default_realm()
    calls: list[str] = []
    rotate: Callable[[str, Algo, int], Awaitable[bool]] = m.rotate_if_due

    async def flaky(realm: str, algo: Algo, interval: int) -> bool:
        calls.append(realm)
        if len(calls) == 1:
            raise RuntimeError("injected")
        if len(calls) == 2:
            raise StoreUnavailable("injected outage")
        return await rotate(realm, algo, interval)

    monkeypatch.setattr(m, "rotate_if_due", flaky)
    scheduler = RotationScheduler(m, 600, tick=0.05)
    async with running(scheduler.run) as task:
        await eventually(lambda: scheduler.loop.last_success is not None, "a pass succeeded")
        assert not task.done()
    assert len(calls) >= 3
    assert len(tracebacks(caplog, "key-rotation failed")) == 1  # the outage: one line
    assert any("store is unavailable" in r.getMessage() for r in caplog.records)


async def test_a_loop_is_unhealthy_after_faults_in_a_row_until_it_succeeds() -> None:
    loop = Supervised("probe", FakeClock(), min_backoff=0.001, max_backoff=0.002, max_failures=3)
    outcomes: list[Exception | None] = [
        StoreUnavailable("away"),  # outages do not count
        Unavailable("away"),
        RuntimeError("one"),
        RuntimeError("two"),
        RuntimeError("three"),
    ]
    seen: list[tuple[bool, str | None]] = []

    async def body() -> None:
        if outcomes:
            outcome = outcomes.pop(0)
            seen.append((loop.healthy, loop.reason))
            if outcome is not None:
                raise outcome
        else:
            seen.append((loop.healthy, loop.reason))
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await loop.run(body)
    assert [h for h, _ in seen] == [True, True, True, True, True, False]
    assert seen[-1][1] == "probe: 3 failures in a row, last RuntimeError: three"
    loop.succeeded()
    assert loop.healthy and loop.reason is None and loop.last_success is not None


def test_the_backoff_doubles_up_to_its_cap() -> None:
    loop = Supervised("probe", FakeClock(), min_backoff=0.5, max_backoff=30.0)
    waits = [loop.failed(Unavailable("away")) for _ in range(2000)]
    assert 0.25 <= waits[0] <= 0.5 and 0.5 <= waits[1] <= 1.0
    assert all(15.0 <= w <= 30.0 for w in waits[8:])  # capped, and no overflow
