"""A Sentinel failover under load: the master is SIGKILLed while keys are being created.

The test has its own Sentinel set (the failover changes which server is master).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import crypto
from service.keys import GenerateKey, KeyManager
from service.storage import RESUBSCRIBED, StoreUnavailable
from service.storage.embedded import find_server_binary
from service.storage.redis import connect
from tests._servers import SentinelSet, running
from tests.conftest import KEK, FakeClock

#: The failover should take a few seconds (down-after 500 ms, then an election).
MAX_GAP = 15.0


@pytest.fixture
def own_sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    with running(SentinelSet(find_server_binary(), tmp_path / "sentinel")) as s:
        assert isinstance(s, SentinelSet)
        yield s


async def test_store_survives_master_kill(own_sentinels: SentinelSet) -> None:
    sentinels = own_sentinels
    old_master = sentinels.master
    store = connect(sentinels.url)
    manager = KeyManager(store, crypto.Sealer(base64.b64decode(KEK)), FakeClock(), grace=3600)
    try:
        await manager.ensure_default_realm()
        killed_at: float | None = None
        recovered_at: float | None = None
        failures: list[BaseException] = []
        successes_after = 0
        deadline = time.monotonic() + MAX_GAP + 10

        async def kill_soon() -> None:
            nonlocal killed_at
            await asyncio.sleep(0.3)
            old_master.kill()
            killed_at = time.monotonic()

        killer = asyncio.create_task(kill_soon())
        # Write in a loop through the kill until a few writes succeed on the new master.
        while successes_after < 3:
            assert time.monotonic() < deadline, "the store never came back"
            try:
                await manager.create_key("default", GenerateKey("es256"))
            except StoreUnavailable as exc:  # anything else fails the test
                failures.append(exc)
                await asyncio.sleep(0.05)
                continue
            if killed_at is not None:
                if recovered_at is None:
                    recovered_at = time.monotonic()
                successes_after += 1
        await killer
        assert killed_at is not None and recovered_at is not None
        gap = recovered_at - killed_at
        print(
            f"\nsentinel failover: first successful write {gap:.2f} s after SIGKILL "
            f"({len(failures)} StoreUnavailable meanwhile)"
        )
        assert failures, "the kill went unnoticed"
        assert gap < MAX_GAP
        assert sentinels.current_master() is sentinels.replica  # the replica took over
        ring = await store.load_ring("default")
        assert ring is not None
        active = Counter(k.algo for k in ring.keys if k.status == "active")
        assert set(active.values()) == {1}, active
        assert active["es256"] == 1
        # The change feed resubscribes on the new master too.
        feed = store.changes()
        assert await asyncio.wait_for(anext(feed), 5) == RESUBSCRIBED
        await manager.create_key("default", GenerateKey("es256"))
        assert (await asyncio.wait_for(anext(feed), 5)).realm == "default"
        await feed.aclose()  # type: ignore[attr-defined]
    finally:
        await store.close()


def test_service_through_master_kill(own_sentinels: SentinelSet, tmp_path: Path) -> None:
    """The whole service on Sentinel while the master dies: the JWKS and client_secret
    tokens keep coming from memory (the client is cached); private_key_jwt, whose jti
    needs the store, and a client not cached yet get 503 (never 500) until the
    replica has taken over, and then work again."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from starlette.testclient import TestClient

    from service.app import create_app
    from service.config import Settings
    from tests.conftest import ADMIN_KEY
    from tests.oauth.test_token import assertion, assertion_form, register_key_client

    settings = Settings(
        redis_url=own_sentinels.url,
        data_dir=tmp_path / "data",
        issuer="http://testserver",
        bootstrap_admin_key=ADMIN_KEY,
        kek=base64.b64decode(KEK),
        rotation_interval=0,
    )
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with TestClient(create_app(settings)) as client:

        def secret_form() -> dict[str, str]:
            reg = client.post(
                "/oauth/register",
                json={"token_endpoint_auth_method": "client_secret_post"},
                headers=admin,
            ).json()
            return {
                "grant_type": "client_credentials",
                "client_id": reg["client_id"],
                "client_secret": reg["client_secret"],
            }

        form, not_cached = secret_form(), secret_form()
        keyed = register_key_client(client, admin, key)["client_id"]
        jwks = client.get("/.well-known/jwks.json").content
        assert client.post("/oauth/token", data=form).status_code == 200
        assert (
            client.post("/oauth/token", data=assertion_form(assertion(key, keyed))).status_code
            == 200
        )
        own_sentinels.master.kill()
        killed_at = time.monotonic()
        statuses: Counter[tuple[str, int]] = Counter()
        while True:
            assert time.monotonic() - killed_at < MAX_GAP, f"no recovery: {statuses}"
            served = client.get("/.well-known/jwks.json")
            assert served.status_code == 200 and served.content == jwks
            assert client.post("/oauth/token", data=form).status_code == 200
            answers = {
                "private_key_jwt": client.post(
                    "/oauth/token", data=assertion_form(assertion(key, keyed))
                ),
                "not cached": client.post("/oauth/token", data=not_cached),
            }
            for name, answer in answers.items():
                statuses[name, answer.status_code] += 1
                assert answer.status_code in (200, 503), answer.text
                if answer.status_code == 503:
                    assert answer.json()["error"] == "temporarily_unavailable"
            if all(a.status_code == 200 for a in answers.values()) and len(statuses) > 2:
                break
            time.sleep(0.05)
        gap = time.monotonic() - killed_at
        print(
            f"\nservice through sentinel failover: all tokens again after {gap:.2f} s ({statuses})"
        )
        assert statuses["private_key_jwt", 503] >= 1 and statuses["not cached", 503] >= 1
        assert client.get("/readyz").status_code == 200
