"""The hot paths do no key import, no unsealing and no store read per request.

Every function that imports a key (joserfc's importers, which ours end in),
opens a sealed secret, or reads or writes the store is wrapped and counted.
After the first request after a change (which may load and import), 100 requests
of each kind count nothing at all, except the one jti write of each
private_key_jwt request (which carries its rate-limit counts). The periodic
version check of the caches and the rate limits' batched counts run in the
background, not in any request, and are not counted (each is one round trip for
many requests or realms).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from starlette.testclient import TestClient

from service import crypto
from service.crypto import Sealer
from service.storage.redis import RedisStore
from tests.oauth.test_token import (
    assertion,
    assertion_form,
    public_jwk,
    register,
    register_key_client,
)

FORM = {"grant_type": "client_credentials"}
#: Store methods that requests could call; the background version checks are not here.
STORE_CALLS = (
    # The rate limits' counts of a request, had it to wait for them; they go to the
    # store behind the requests, batched (``tally``, like the version check: not
    # counted).
    "count",
    "load_ring",
    "ring_version",
    "get_key",
    "page_keys",
    "get_client",
    "load_client",
    "page_clients",
    "list_realms",
    "get_admin_key",
    "consume_jti",
    "save_ring",
    "create_realm",
    "put_client",
    "delete_client",
)


class Work(Counter[str]):
    """Counts of counted calls, and the threads key work ran on."""

    on_loop: Counter[str]

    def __init__(self) -> None:
        super().__init__()
        self.on_loop = Counter()


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Iterator[Work]:
    """Wrap every key import, unsealing and store call; count them."""
    counted = Work()

    def wrap(owner: Any, name: str, label: str, *, is_classmethod: bool = False) -> None:
        original = getattr(owner, name)
        func = original.__func__ if is_classmethod else original

        @functools.wraps(func)
        def counting(*args: Any, **kwargs: Any) -> Any:
            counted[label] += 1
            counted.on_loop[label] += _on_event_loop()
            return func(*args, **kwargs)

        monkeypatch.setattr(owner, name, classmethod(counting) if is_classmethod else counting)

    for cls in (RSAKey, ECKey, OKPKey, OctKey):
        wrap(cls, "import_key", "import", is_classmethod=True)
    wrap(crypto._keys.serialization, "load_pem_public_key", "import")
    wrap(crypto._tokens.serialization, "load_pem_private_key", "import")
    wrap(Sealer, "open", "unseal")
    wrap(crypto, "sign_jwt", "sign")
    for name in STORE_CALLS:
        wrap(RedisStore, name, f"store.{name}")
    yield counted


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@pytest.fixture
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _requests(
    client: TestClient, admin: dict[str, str], key: rsa.RSAPrivateKey
) -> dict[str, Callable[[], httpx.Response]]:
    """One request of each hot kind, by name; each must answer 200."""
    basic = register(client, admin)
    post = register(client, admin, token_endpoint_auth_method="client_secret_post")
    keyed = register_key_client(client, admin, key)["client_id"]
    client.post(
        "/v1/realms/default/jwt_keys", json={"algo": "hs256"}, headers=admin
    ).raise_for_status()
    hs = register(client, admin, access_token_signed_response_alg="HS256")
    token = client.post(
        "/oauth/token", data=FORM, headers=_basic(basic["client_id"], basic["client_secret"])
    ).json()["access_token"]
    return {
        "client_secret_basic": lambda: client.post(
            "/oauth/token", data=FORM, headers=_basic(basic["client_id"], basic["client_secret"])
        ),
        "client_secret_post": lambda: client.post(
            "/oauth/token",
            data={**FORM, "client_id": post["client_id"], "client_secret": post["client_secret"]},
        ),
        "private_key_jwt": lambda: client.post(
            "/oauth/token", data=assertion_form(assertion(key, keyed))
        ),
        "HS256 access token": lambda: client.post(
            "/oauth/token", data=FORM, headers=_basic(hs["client_id"], hs["client_secret"])
        ),
        "introspection": lambda: client.post(
            "/oauth/introspect",
            data={"token": token},
            headers=_basic(basic["client_id"], basic["client_secret"]),
        ),
        "JWKS": lambda: client.get("/.well-known/jwks.json"),
        "discovery": lambda: client.get("/.well-known/openid-configuration"),
    }


def _expected(name: str) -> Counter[str]:
    """What 100 requests may count: the signatures (no import), and pkjwt's jti write."""
    if name in ("JWKS", "discovery", "introspection"):
        return Counter()
    if name == "private_key_jwt":
        return Counter({"sign": 100, "store.consume_jti": 100})
    return Counter({"sign": 100})


def _hundred(send: Callable[[], httpx.Response], work: Work) -> Counter[str]:
    work.clear()
    work.on_loop.clear()
    for _ in range(100):
        response = send()
        assert response.status_code == 200, response.text
        assert response.json().get("active", True), response.text
    return Counter(work)


def test_hot_paths_do_no_per_request_work(
    make_client: Callable[..., TestClient],
    admin: dict[str, str],
    key: rsa.RSAPrivateKey,
    work: Work,
) -> None:
    requests = _requests(make_client(), admin, key)
    for name, send in requests.items():
        assert send().status_code == 200  # the first one may load and import
        assert _hundred(send, work) == _expected(name), name


def test_after_a_change_only_the_first_request_loads(
    make_client: Callable[..., TestClient],
    admin: dict[str, str],
    key: rsa.RSAPrivateKey,
    work: Work,
) -> None:
    client = make_client()
    requests = _requests(client, admin, key)
    for send in requests.values():
        send()
    # A ring change: a new RS256 key signs at once.
    client.post(
        "/v1/realms/default/jwt_keys/rotate",
        json={"algo": "rs256", "immediate": True},
        headers=admin,
    ).raise_for_status()
    work.clear()
    assert requests["client_secret_basic"]().status_code == 200
    first = Counter(work)
    # The ring was loaded once, and only the new key was opened and imported (its
    # signing handle, its verification handle, its PEM); the others kept theirs.
    assert first["store.load_ring"] == 1 and first["import"] == 3, first
    assert first["unseal"] == 1, first
    for name, send in requests.items():
        assert _hundred(send, work) == _expected(name), name


def test_a_client_change_reloads_that_client_once(
    make_client: Callable[..., TestClient],
    admin: dict[str, str],
    key: rsa.RSAPrivateKey,
    work: Work,
) -> None:
    client = make_client()
    keyed = register_key_client(client, admin, key)["client_id"]
    assert (
        client.post("/oauth/token", data=assertion_form(assertion(key, keyed))).status_code == 200
    )
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client.put(
        f"/v1/realms/default/clients/{keyed}/jwks",
        json={"keys": [public_jwk(new_key, "k2")]},
        headers=admin,
    ).raise_for_status()
    work.clear()
    old = client.post("/oauth/token", data=assertion_form(assertion(key, keyed)))
    assert old.status_code == 401  # the old key is gone, here at once
    assert work["store.load_client"] == 1 and work["import"] == 1, work
    time.sleep(0.3)  # the store's change message arrives, and changes nothing more
    counts = _hundred(
        lambda: client.post(
            "/oauth/token", data=assertion_form(assertion(new_key, keyed, kid="k2"))
        ),
        work,
    )
    assert counts == _expected("private_key_jwt")


def test_another_replica_reloads_on_the_change_message(
    make_client: Callable[..., TestClient],
    admin: dict[str, str],
    key: rsa.RSAPrivateKey,
    work: Work,
) -> None:
    writer, reader = make_client(), make_client()
    requests = _requests(reader, admin, key)
    send = requests["client_secret_basic"]
    kid_before = send().json()["access_token"]
    writer.post(
        "/v1/realms/default/jwt_keys/rotate",
        json={"algo": "rs256", "immediate": True},
        headers=admin,
    ).raise_for_status()
    deadline = time.monotonic() + 5
    header = crypto.unverified_header
    while header(send().json()["access_token"])["kid"] == header(kid_before)["kid"]:
        assert time.monotonic() < deadline, "the other replica never saw the rotation"
        time.sleep(0.02)
    for name, send in requests.items():
        send()  # the first request after the change (some were never sent before)
        assert _hundred(send, work) == _expected(name), name


def test_key_work_stays_off_the_event_loop(
    make_client: Callable[..., TestClient], admin: dict[str, str], work: Work
) -> None:
    """Imports run where the ring is prepared, in a thread; RSA signs in a thread (with
    JWKS_SIGN_THREAD_MIN_BITS above the key's size, in place)."""
    client = make_client(rsa_bits=4096)
    client.post("/v1/realms", json={"name": "big"}, headers=admin).raise_for_status()
    work.clear()  # the first request for the realm (here, the registration) prepares it
    reg = client.post("/realms/big/oauth/register", json={}, headers=admin).json()
    headers = _basic(reg["client_id"], reg["client_secret"])
    assert client.post("/realms/big/oauth/token", data=FORM, headers=headers).status_code == 200
    assert work["import"] >= 1 and work.on_loop["import"] == 0, (work, work.on_loop)
    assert work["sign"] == 1 and work.on_loop["sign"] == 0, work.on_loop
    small = make_client(sign_thread_min_bits=3072)  # generates RSA-2048 keys
    small.post("/v1/realms", json={"name": "small"}, headers=admin).raise_for_status()
    reg = small.post("/realms/small/oauth/register", json={}, headers=admin).json()
    work.clear()
    small.post(
        "/realms/small/oauth/token",
        data=FORM,
        headers=_basic(reg["client_id"], reg["client_secret"]),
    ).raise_for_status()
    assert work["sign"] == 1 and work.on_loop["sign"] == 1, work.on_loop


def test_token_requests_are_admitted_a_few_at_a_time(
    settings: Any, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most two token requests per core are in progress at once; the others wait in
    order (so a JWKS request never queues behind all of them); all are answered."""
    from service.app import create_app
    from service.keys import usable_cores
    from service.oauth.grants import ClientCredentialsGrant

    inside, most = 0, 0
    issue = ClientCredentialsGrant.issue

    async def counting(self: Any, *args: Any) -> Any:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        try:
            await asyncio.sleep(0.01)  # a slow signature, say
            return await issue(self, *args)
        finally:
            inside -= 1

    monkeypatch.setattr(ClientCredentialsGrant, "issue", counting)
    with TestClient(create_app(settings)) as client:
        reg = register(client, admin)
        headers = _basic(reg["client_id"], reg["client_secret"])
        # 20 at once: each thread's request runs concurrently on the app's event loop.
        with ThreadPoolExecutor(20) as pool:
            answers = list(
                pool.map(
                    lambda _: client.post("/oauth/token", data=FORM, headers=headers), range(20)
                )
            )
    assert [a.status_code for a in answers] == [200] * 20
    assert most == min(20, 2 * usable_cores()), most
