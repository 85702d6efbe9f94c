"""``service.metrics``: bounded labels, the calls of the layers below HTTP, and the
multi-process mode of ``serve --workers``.

In this process ``prometheus_client`` is in single-process mode (the suite does
not set PROMETHEUS_MULTIPROC_DIR), and its values are shared by every test: each
test compares values before and after its own actions.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from service import crypto, metrics
from service.cli import _share_metrics
from service.config import ConfigError, Settings
from service.errors import Unavailable
from service.keys import KeyManager, Supervised
from service.metrics import _families
from service.models import Client
from service.oauth.client_cache import ClientCache
from service.storage.redis import RedisStore, _error_kind
from tests._service import free_port, start_service, stop, wait_ready
from tests.conftest import ADMIN_KEY, KEK, FakeClock


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# Labels ---------------------------------------------------------------------


def test_a_request_is_counted_and_timed_by_route_method_and_status() -> None:
    route = "/test/{thing}"
    count = {"route": route, "method": "GET", "status": "200"}
    fast = {"route": route, "method": "GET", "le": "0.005"}
    slow = {"route": route, "method": "GET", "le": "0.0025"}
    before = (
        sample("jwks_http_requests_total", **count),
        sample("jwks_http_request_duration_seconds_bucket", **fast),
    )
    metrics.observe_request(route, "GET", 200, 0.003)
    assert sample("jwks_http_requests_total", **count) == before[0] + 1
    assert sample("jwks_http_request_duration_seconds_bucket", **fast) == before[1] + 1
    assert sample("jwks_http_request_duration_seconds_bucket", **slow) == 0


def test_a_made_up_method_is_counted_as_other() -> None:
    labels = {"route": "/test", "method": "_other", "status": "405"}
    before = sample("jwks_http_requests_total", **labels)
    for method in ("BREW", "WHEN", "BREW"):
        metrics.observe_request("/test", method, 405, 0.001)
    assert sample("jwks_http_requests_total", **labels) == before + 3
    assert sample("jwks_http_requests_total", route="/test", method="BREW", status="405") == 0


def test_routes_past_the_bound_are_counted_as_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_MAX_ROUTES", len(metrics._routes))
    labels = {"route": "_other", "method": "GET", "status": "404"}
    before = sample("jwks_http_requests_total", **labels)
    metrics.observe_request("/one/path/of/many", "GET", 404, 0.001)
    assert sample("jwks_http_requests_total", **labels) == before + 1


def test_realms_past_the_limit_share_one_label_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_families, "REALMS", _families._RealmLabels(0))
    metrics.limit_realms(2)
    labels = {"auth_method": "client_secret_basic", "profile": "rfc9068"}
    other = sample("jwks_tokens_issued_total", realm="_other", **labels)
    for realm in ("cap-a", "cap-b", "cap-c", "cap-d", "cap-a"):
        metrics.token_issued(realm, "client_secret_basic", "rfc9068")
    assert sample("jwks_tokens_issued_total", realm="cap-a", **labels) == 2
    assert sample("jwks_tokens_issued_total", realm="cap-b", **labels) == 1
    assert sample("jwks_tokens_issued_total", realm="cap-c", **labels) == 0
    assert sample("jwks_tokens_issued_total", realm="_other", **labels) == other + 2
    states = [metrics.KeyState(r, "rs256", 1.0, True) for r in ("cap-a", "cap-c")]
    text = metrics.exposition(states, now=0.0).decode()
    assert 'jwks_signing_key_age_seconds{algo="rs256",realm="cap-a"}' in text
    assert "cap-c" not in text
    metrics.limit_realms(0)  # no limit
    metrics.token_issued("cap-e", "client_secret_basic", "rfc9068")
    assert sample("jwks_tokens_issued_total", realm="cap-e", **labels) == 1


# The layers below HTTP --------------------------------------------------------


@pytest.fixture
def manager(store: RedisStore) -> tuple[KeyManager, FakeClock]:
    clock = FakeClock()
    sealer = crypto.Sealer(base64.b64decode(KEK))
    return KeyManager(store, sealer, clock, grace=3600, publish_lead=305), clock


async def test_a_scheduled_promotion_is_a_rotation_and_a_publication_is_not(
    manager: tuple[KeyManager, FakeClock],
) -> None:
    keys, clock = manager
    await keys.ensure_default_realm()
    labels = {"realm": "default", "algo": "rs256", "trigger": "scheduled"}
    before = sample("jwks_key_rotations_total", **labels)
    assert await keys.rotate_if_due("default", "rs256", 1000)  # publishes a next key
    assert sample("jwks_key_rotations_total", **labels) == before
    clock.advance(1000)
    assert await keys.rotate_if_due("default", "rs256", 1000)  # promotes it
    assert sample("jwks_key_rotations_total", **labels) == before + 1


async def test_a_version_check_that_finds_a_cache_behind_is_counted(
    manager: tuple[KeyManager, FakeClock], store: RedisStore
) -> None:
    """No change feed here: only the version check can find the other writer's changes."""
    keys, clock = manager
    await keys.ensure_default_realm()
    other = KeyManager(store, crypto.Sealer(base64.b64decode(KEK)), clock, grace=3600)
    await keys.prepared("default")
    rings = sample("jwks_cache_invalidations_total", cache="key_ring", cause="revalidation")
    await other.rotate("default", "rs256", immediate=True)
    await keys.cache.revalidate()
    after = sample("jwks_cache_invalidations_total", cache="key_ring", cause="revalidation")
    assert after == rings + 1

    cache = ClientCache(store)
    client = Client("jcl_metrics", 0.0, "client_secret_basic")
    await store.put_client("default", client)
    assert await cache.get("default", "jcl_metrics") is not None
    clients = sample("jwks_cache_invalidations_total", cache="client", cause="revalidation")
    await store.put_client("default", client)  # the message is not heard
    await cache.revalidate()
    after = sample("jwks_cache_invalidations_total", cache="client", cause="revalidation")
    assert after == clients + 1


def test_loop_failures_are_counted_by_kind() -> None:
    loop = Supervised("test loop", FakeClock())
    outage = sample("jwks_background_loop_failures_total", loop="test loop", kind="outage")
    fault = sample("jwks_background_loop_failures_total", loop="test loop", kind="fault")
    loop.failed(Unavailable("the store is away"))
    loop.failed(RuntimeError("a bug"))
    loop.succeeded()
    labels = {"loop": "test loop"}
    assert sample("jwks_background_loop_failures_total", **labels, kind="outage") == outage + 1
    assert sample("jwks_background_loop_failures_total", **labels, kind="fault") == fault + 1
    assert sample("jwks_background_loop_last_success_timestamp_seconds", **labels) == (
        FakeClock().now()
    )


def test_store_errors_have_a_kind_from_a_closed_set() -> None:
    import redis.exceptions as rex
    from redis.asyncio.sentinel import MasterNotFoundError

    assert _error_kind(rex.ConnectionError("refused")) == "connection"
    assert _error_kind(rex.TimeoutError()) == "timeout"
    assert _error_kind(TimeoutError()) == "timeout"
    assert _error_kind(rex.BusyLoadingError()) == "loading"
    assert _error_kind(MasterNotFoundError()) == "no_master"
    assert _error_kind(rex.ReadOnlyError()) == "readonly"
    assert _error_kind(rex.MasterDownError("MASTERDOWN")) == "master_down"
    assert _error_kind(rex.ClusterDownError("CLUSTERDOWN")) == "cluster_down"
    assert _error_kind(OSError()) == "os"


# Settings -------------------------------------------------------------------


def test_the_metrics_settings(tmp_path: Path) -> None:
    token = "t" * 16
    file = tmp_path / "token"
    file.write_text(token + "\n")
    assert Settings.from_env({}).metrics_token is None
    assert Settings.from_env({"JWKS_METRICS_TOKEN": token}).metrics_token == token
    assert Settings.from_env({"JWKS_METRICS_TOKEN_FILE": str(file)}).metrics_token == token
    assert token not in repr(Settings.from_env({"JWKS_METRICS_TOKEN": token}))
    for bad in ("short", "t" * 15, "has a space in it!", "tab\tin-the-middle-token"):
        with pytest.raises(ConfigError) as refused:
            Settings.from_env({"JWKS_METRICS_TOKEN": bad})
        assert refused.value.variable == "JWKS_METRICS_TOKEN"
        assert bad not in str(refused.value)
    assert Settings.from_env({}).metrics_realms == 100
    assert Settings.from_env({"JWKS_METRICS_REALMS": "0"}).metrics_realms == 0
    with pytest.raises(ConfigError, match="JWKS_METRICS_REALMS"):
        Settings.from_env({"JWKS_METRICS_REALMS": "many"})
    assert Settings.from_env({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}).metrics_dir == tmp_path
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
        Settings.from_env({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing")})


@pytest.fixture
def no_multiproc_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


@pytest.mark.usefixtures("no_multiproc_dir")
def test_serve_gives_workers_a_directory_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR is read again
    with contextlib.ExitStack() as stack:
        _share_metrics(stack, 1, Settings())
        assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # one process needs none
    with contextlib.ExitStack() as stack:
        _share_metrics(stack, 2, Settings())
        directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        assert directory.is_dir() and directory.parent == tmp_path
        assert directory.name.startswith("jwks-metrics-")
    assert not directory.exists()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


@pytest.mark.usefixtures("no_multiproc_dir")
def test_serve_empties_the_operators_directory(tmp_path: Path) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not ours")
    with contextlib.ExitStack() as stack:
        _share_metrics(stack, 4, Settings(metrics_dir=tmp_path))
        assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # the operator's is in force
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


# serve --workers 2 --------------------------------------------------------------

TOKENS = 40


def _scrape(url: str) -> list[Any]:
    response = httpx.get(f"{url}/metrics", timeout=5.0)
    assert response.status_code == 200, response.text
    return [s for f in text_string_to_metric_families(response.text) for s in f.samples]


def _total(samples: list[Any], name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture(scope="module")
def two_workers(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """``serve --workers 2`` on the flushed test store, after :data:`TOKENS` tokens were
    issued, each on a connection of its own; its URL and its temp dir."""
    import redis

    with redis.Redis.from_url(redis_url) as flusher:
        flusher.flushall()
    tmp = tmp_path_factory.mktemp("workers")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / "serve.log"
    process = start_service(
        port,
        redis_url,
        tmp / "data",
        log,
        workers=2,
        TMPDIR=str(tmp),
        JWKS_ACCESS_LOG="0",
        JWKS_ROTATION_INTERVAL="0",
    )
    try:
        wait_ready(process, url, log)
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        registered = httpx.post(f"{url}/oauth/register", json={}, headers=admin, timeout=5.0)
        assert registered.status_code == 201, registered.text
        auth = (registered.json()["client_id"], registered.json()["client_secret"])
        for _ in range(TOKENS):
            grant = {"grant_type": "client_credentials"}
            issued = httpx.post(f"{url}/oauth/token", data=grant, auth=auth, timeout=5.0)
            assert issued.status_code == 200, issued.text
        yield url, tmp
    finally:
        stop(process)
    assert not list(tmp.glob("jwks-metrics-*")), "the metrics directory outlived serve"
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]


def test_every_scrape_counts_the_tokens_of_both_workers(two_workers: tuple[str, Path]) -> None:
    url, tmp = two_workers
    assert len(list(tmp.glob("jwks-metrics-*/*.db"))) >= 2  # both workers write
    pids: set[str] = set()
    for _ in range(8):
        samples = _scrape(url)
        tokens = _total(samples, "jwks_tokens_issued_total", realm="default")
        assert tokens == TOKENS, "a scrape saw another total"
        # liveall: one sample per worker; both answer every scrape.
        loop = "jwks_background_loop_last_success_timestamp_seconds"
        seen = {s.labels["pid"] for s in samples if s.name == loop}
        assert len(seen) == 2, seen
        pids |= seen
        ages = [s for s in samples if s.name == "jwks_cache_age_seconds"]
        assert {s.labels["pid"] for s in ages} == seen
    assert len(pids) == 2 and all(re.fullmatch(r"[0-9]+", p) for p in pids)


def test_every_scrape_counts_the_requests_of_both_workers(
    two_workers: tuple[str, Path],
) -> None:
    """Needs ``observe_request`` wired in ``service.http.hot``."""
    url, _tmp = two_workers
    for _ in range(4):
        samples = _scrape(url)
        answered = _total(
            samples, "jwks_http_requests_total", route="/oauth/token", method="POST", status="200"
        )
        assert answered == TOKENS
        timed = _total(samples, "jwks_http_request_duration_seconds_count", route="/oauth/token")
        assert timed == TOKENS
