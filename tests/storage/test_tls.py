"""TLS to the store: ``rediss://``, ``rediss+cluster://`` and ``rediss+sentinel://``.

The embedded server has no TLS, so each server sits behind a TLS proxy
(``tests/_tls.py``) that presents a certificate from a test CA. The Sentinel set
is a master with a password and a Sentinel with a password of its own that also
wants a client certificate, so a working store proves that every setting
reaches the Sentinels and the master.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient

from service.bootstrap import wait_for_store
from service.models import Realm
from service.storage import StoreUnavailable
from service.storage.embedded import find_server_binary
from service.storage.redis import connect
from tests._tls import (
    MASTER_PASSWORD,
    SENTINEL_PASSWORD,
    Pki,
    TlsCluster,
    TlsProxy,
    TlsSentinelSet,
    make_pki,
    running_tls,
)

#: A misconfigured TLS store must fail fast, not hang until a timeout.
FAST = 2.0
NOW = 1_800_000_000.0


async def _settle(proxy: TlsProxy) -> None:
    """Let TLS shutdowns finish before the test's event loop closes.

    On an error redis-py closes a connection without waiting, and its TLS transport
    then waits for the peer to close: were the loop closed first, the socket would
    be reported unclosed (a ResourceWarning, an error here). Once the proxy has
    closed every connection, the loop needs a moment to read those EOFs.
    """
    await asyncio.to_thread(proxy.wait_idle)
    await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_sentinels(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsSentinelSet]:
    """A master and a Sentinel, each with its own password, behind TLS proxies."""
    topology = TlsSentinelSet(find_server_binary(), tmp_path_factory.mktemp("tls-sentinel"), pki)
    with running_tls(topology) as s:
        assert isinstance(s, TlsSentinelSet)
        print(f"\nTLS sentinel set ready in {s.setup_seconds:.2f} s")
        yield s


@pytest.fixture(scope="session")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsCluster]:
    """Three Cluster masters behind TLS proxies, announcing the proxies' ports."""
    with running_tls(
        TlsCluster(find_server_binary(), tmp_path_factory.mktemp("tls-cluster"), pki)
    ) as c:
        assert isinstance(c, TlsCluster)
        print(f"\nTLS cluster ready in {c.setup_seconds:.2f} s")
        yield c


@pytest.fixture(params=["single", "cluster", "sentinel"])
def tls_url(request: pytest.FixtureRequest, pki: Pki, tls_sentinels: TlsSentinelSet) -> str:
    """Each TLS topology's URL in turn, its data flushed."""
    if request.param == "cluster":
        cluster: TlsCluster = request.getfixturevalue("tls_cluster")
        cluster.flush()
        return cluster.url
    tls_sentinels.flush()
    if request.param == "sentinel":
        return tls_sentinels.url()
    return tls_sentinels.server_url(f"ssl_ca_certs={pki.ca}")


def test_app_runs_over_tls(
    make_client: Callable[..., TestClient], tls_url: str, admin: dict[str, str]
) -> None:
    client = make_client(redis_url=tls_url)
    assert client.post("/v1/realms", json={"name": "acme"}, headers=admin).status_code == 201
    names = [r["name"] for r in client.get("/v1/realms", headers=admin).json()["data"]]
    assert names == ["acme", "default"]
    jwks = client.get("/realms/acme/.well-known/jwks.json")
    assert jwks.status_code == 200 and len(jwks.json()["keys"]) >= 1


async def test_sentinel_settings_reach_the_sentinels_and_the_master(
    tls_sentinels: TlsSentinelSet,
) -> None:
    tls_sentinels.flush()
    sentinel_before = tls_sentinels.sentinel_proxy.tls_connections
    master_before = tls_sentinels.master_proxy.tls_connections
    store = connect(tls_sentinels.url())
    try:
        await store.create_realm(Realm("acme", created_at=NOW), [], NOW)
        assert await store.get_realm("acme") is not None
    finally:
        await store.close()
    # The Sentinel was asked over TLS (with a client certificate and its password:
    # its proxy and requirepass refuse anything less), then the master over TLS.
    assert tls_sentinels.sentinel_proxy.tls_connections > sentinel_before
    assert tls_sentinels.master_proxy.tls_connections > master_before
    with tls_sentinels.master.client() as c:
        assert c.dbsize() > 0


async def test_cluster_clients_follow_the_announced_tls_ports(tls_cluster: TlsCluster) -> None:
    tls_cluster.flush()
    store = connect(tls_cluster.url)
    try:
        # Enough realms that every node owns some of their slots.
        for n in range(24):
            await store.create_realm(Realm(f"realm-{n}", created_at=NOW), [], NOW)
        assert await store.count_realms() == 24
    finally:
        await store.close()
    assert all(proxy.tls_connections > 0 for proxy in tls_cluster.proxies)
    for node in tls_cluster.nodes:
        with node.client() as c:
            assert c.dbsize() > 0


@pytest.mark.parametrize("topology", ["single", "cluster"])
async def test_a_certificate_from_another_ca_fails_fast_and_says_so(
    topology: str, pki: Pki, tls_sentinels: TlsSentinelSet, request: pytest.FixtureRequest
) -> None:
    if topology == "cluster":
        cluster: TlsCluster = request.getfixturevalue("tls_cluster")
        url = cluster.url.replace(str(pki.ca), str(pki.other_ca))
    else:
        url = tls_sentinels.server_url(f"ssl_ca_certs={pki.other_ca}")
    store = connect(url)
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable, match="TLS certificate did not verify"):
            await store.ping()
        # The start-up wait names the same cause, not the errno in the chain
        # (a certificate failure is errno 1: "operation not permitted").
        with pytest.raises(StoreUnavailable) as caught:
            await wait_for_store(store, "the store", 0)
        assert str(caught.value).endswith(
            "its TLS certificate did not verify (ssl_ca_certs, ssl_check_hostname)"
        )
    finally:
        await store.close()
    assert time.monotonic() - started < 2 * FAST


async def test_cert_reqs_none_connects_and_warns(
    tls_sentinels: TlsSentinelSet, caplog: pytest.LogCaptureFixture
) -> None:
    # The server's certificate is from a CA we do not trust, and nobody checks.
    url = tls_sentinels.server_url("ssl_cert_reqs=none")
    with caplog.at_level(logging.WARNING, logger="service.storage.redis"):
        store = connect(url)
    try:
        await store.ping()
    finally:
        await store.close()
    warnings = [r for r in caplog.records if "ssl_cert_reqs=none" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert MASTER_PASSWORD not in caplog.text


async def test_verified_connections_do_not_warn(
    tls_sentinels: TlsSentinelSet, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="service.storage.redis"):
        store = connect(tls_sentinels.url())
    await store.close()
    assert "ssl_cert_reqs" not in caplog.text


async def test_mutual_tls_sends_the_client_certificate(
    tls_sentinels: TlsSentinelSet, pki: Pki
) -> None:
    trust = f"ssl_ca_certs={pki.ca}"
    without = connect(tls_sentinels.server_url(trust, mtls=True))
    try:
        with pytest.raises(StoreUnavailable):
            await without.ping()
    finally:
        await without.close()
        await _settle(tls_sentinels.mtls_proxy)
    client_cert = f"{trust}&ssl_certfile={pki.client_cert}&ssl_keyfile={pki.client_key}"
    with_cert = connect(tls_sentinels.server_url(client_cert, mtls=True))
    try:
        await with_cert.ping()
    finally:
        await with_cert.close()


async def test_sentinel_without_its_password_fails_and_says_so(
    tls_sentinels: TlsSentinelSet,
) -> None:
    # The userinfo (the master's password) alone does not open the Sentinel.
    url = tls_sentinels.url(sentinel_password=False)
    assert SENTINEL_PASSWORD not in url
    store = connect(url)
    try:
        with pytest.raises(StoreUnavailable, match="a Sentinel refused the credentials") as caught:
            await store.ping()
    finally:
        await store.close()
        await _settle(tls_sentinels.sentinel_proxy)
    assert MASTER_PASSWORD not in str(caught.value)
