"""End to end: scheduled rotation is invisible to verifiers that honour Cache-Control.

Three real ``python -m service serve`` replicas of one service share one store and
rotate the default realm's RS256 key every few seconds. Meanwhile:

- a client fetches tokens from a random replica, over and over;
- a verifier checks each one with PyJWT at once, and again shortly before it
  expires, with a JWKS it caches exactly as long as ``Cache-Control: max-age``
  allows (and never refetches on an unknown kid);
- a monitor polls the admin API and every replica's JWKS: the ring always has one
  active RS256 key and at most one next key per algo, and an expired key leaves
  the JWKS once its grace ends.

Half-way, one replica is SIGKILLed (timed for when a promotion is due); the other
two keep rotating, and the ring stays consistent.

The store is flushed (``redis_client``) before the replicas start.
"""

from __future__ import annotations

import collections
import random
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import httpx
import jwt
import redis

from tests._service import free_port, start_service, wait_ready
from tests._service import stop as stop_service
from tests.conftest import ADMIN_KEY

REPLICAS: Final = 3

MAX_AGE: Final = 1
TOKEN_TTL: Final = 10
GRACE: Final = 80  # >= TOKEN_TTL + MAX_AGE + 60
INTERVAL: Final = 7  # > MAX_AGE + 5

MIN_RUN: Final = 75.0
MAX_RUN: Final = 100.0
MIN_ROTATIONS: Final = 10
KILL_AFTER_ROTATIONS: Final = 5
MIN_ROTATIONS_AFTER_KILL: Final = 2
#: Tokens are verified again when this old (they expire at TOKEN_TTL).
REVERIFY_AGE: Final = 8.0
#: How long after ``expires_at`` an expired key may still be in a JWKS: the
#: admin API shows whole seconds (+1), then TTL pruning and the replica's cache.
EXPIRY_SLACK: Final = 3.0
MONITOR_PERIOD: Final = 0.15
ADMIN: Final = {"Authorization": f"Bearer {ADMIN_KEY}"}
MAX_AGE_RE: Final = re.compile(r"(?:^|,)\s*max-age=(\d+)\s*(?:,|$)")


@dataclass
class Replica:
    """One ``python -m service serve`` process."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


class Fleet:
    """The replicas that take requests; a killed one is taken out first."""

    def __init__(self, replicas: list[Replica]) -> None:
        self._lock = threading.Lock()
        self._live = list(replicas)

    def live(self) -> list[Replica]:
        with self._lock:
            return list(self._live)

    def pick(self) -> Replica:
        with self._lock:
            return random.choice(self._live)  # noqa: S311

    def remove(self, replica: Replica) -> None:
        with self._lock:
            self._live.remove(replica)


@dataclass
class Stats:
    """What the threads saw; lists of problems must stay empty."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    issued: int = 0
    verified_fresh: int = 0
    verified_aged: int = 0
    aged_skipped: int = 0
    jwks_fetches: int = 0
    signing_kids: collections.Counter[str] = field(default_factory=collections.Counter)
    verify_failures: list[str] = field(default_factory=list)
    token_errors: list[str] = field(default_factory=list)
    monitor_errors: list[str] = field(default_factory=list)
    ring_violations: list[str] = field(default_factory=list)
    jwks_violations: list[str] = field(default_factory=list)
    ring_checks: int = 0
    #: Distinct active RS256 kids, in the order first seen, with when (time.time()).
    active_kids: dict[str, float] = field(default_factory=dict)
    #: kid -> latest possible expires_at (the API shows whole seconds).
    expires: dict[str, float] = field(default_factory=dict)
    #: kid -> replicas whose JWKS lacked it after expires_at + slack.
    gone_from: dict[str, set[str]] = field(default_factory=dict)


def _start(name: str, port: int, issuer: str, redis_url: str, tmp: Path) -> Replica:
    log = tmp / f"{name}.log"
    process = start_service(
        port,
        redis_url,
        tmp / f"data-{name}",
        log,
        JWKS_ISSUER=issuer,
        JWKS_JWKS_MAX_AGE=str(MAX_AGE),
        JWKS_TOKEN_TTL=str(TOKEN_TTL),
        JWKS_KEY_GRACE=str(GRACE),
        JWKS_ROTATION_INTERVAL=str(INTERVAL),
    )
    return Replica(name, f"http://127.0.0.1:{port}", process, log)


def _timestamp(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


class CachingVerifier:
    """A resource server: PyJWT with a JWKS kept exactly as long as its max-age allows.

    It never refetches on an unknown kid: a token whose key is not in the cached
    JWKS fails, as it would for any verifier that only honours Cache-Control.
    """

    def __init__(self, fleet: Fleet, issuer: str, http: httpx.Client, stats: Stats) -> None:
        self._fleet = fleet
        self._issuer = issuer
        self._http = http
        self._stats = stats
        self._jwks: jwt.PyJWKSet | None = None
        self._fetched_at = 0.0
        self._max_age = 0
        self._source = ""

    def _refresh(self) -> None:
        replica = self._fleet.pick()
        # The age counts from the request (RFC 9111 §4.2.3), never from the answer.
        requested = time.monotonic()
        response = self._http.get(f"{replica.url}/.well-known/jwks.json")
        response.raise_for_status()
        match = MAX_AGE_RE.search(response.headers.get("cache-control", ""))
        if match is None:
            raise AssertionError(f"no max-age in {response.headers.get('cache-control')!r}")
        self._jwks = jwt.PyJWKSet.from_dict(response.json())
        self._fetched_at = requested
        self._max_age = int(match.group(1))
        self._source = replica.name
        with self._stats.lock:
            self._stats.jwks_fetches += 1

    def _key(self, kid: str) -> jwt.PyJWK:
        if self._jwks is None or time.monotonic() - self._fetched_at >= self._max_age:
            self._refresh()
        assert self._jwks is not None
        for key in self._jwks.keys:
            if key.key_id == kid:
                return key
        age = time.monotonic() - self._fetched_at
        known = [k.key_id for k in self._jwks.keys]
        raise LookupError(
            f"kid {kid} is not in the cached JWKS (from {self._source}, {age:.2f} s old, "
            f"max-age {self._max_age}): {known}"
        )

    def verify(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "RS256" or header.get("typ") != "at+jwt":
            raise ValueError(f"unexpected header {header}")
        key = self._key(str(header["kid"]))
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=self._issuer,
            issuer=self._issuer,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]},
        )
        return claims


def _client_loop(
    fleet: Fleet,
    issuer: str,
    credentials: dict[str, str],
    stats: Stats,
    stop: threading.Event,
) -> None:
    """Fetch tokens from random replicas; verify each at once and again when old."""
    pending: collections.deque[tuple[float, str, str]] = collections.deque()
    with httpx.Client(timeout=5.0) as http:
        verifier = CachingVerifier(fleet, issuer, http, stats)

        def check(token: str, what: str) -> bool:
            try:
                verifier.verify(token)
            except Exception as exc:  # every failure is recorded, none stops the loop
                kid = jwt.get_unverified_header(token).get("kid")
                with stats.lock:
                    stats.verify_failures.append(
                        f"{time.time():.3f} {what} kid={kid}: {type(exc).__name__}: {exc}"
                    )
                return False
            return True

        while not stop.is_set():
            replica = fleet.pick()
            try:
                response = http.post(
                    f"{replica.url}/oauth/token",
                    data={"grant_type": "client_credentials", **credentials},
                )
            except httpx.TransportError as exc:
                with stats.lock:
                    stats.token_errors.append(f"{time.time():.3f} {replica.name}: {exc!r}")
                stop.wait(0.1)
                continue
            if response.status_code != 200:
                with stats.lock:
                    stats.token_errors.append(
                        f"{time.time():.3f} {replica.name}: {response.status_code} {response.text}"
                    )
                stop.wait(0.1)
                continue
            token: str = response.json()["access_token"]
            kid = str(jwt.get_unverified_header(token).get("kid"))
            with stats.lock:
                stats.issued += 1
                stats.signing_kids[kid] += 1
            if check(token, f"fresh from {replica.name}"):
                with stats.lock:
                    stats.verified_fresh += 1
            pending.append((time.monotonic(), token, replica.name))
            while pending and time.monotonic() - pending[0][0] >= REVERIFY_AGE:
                issued_at, old, source = pending.popleft()
                if time.monotonic() - issued_at > TOKEN_TTL - 1:
                    with stats.lock:
                        stats.aged_skipped += 1
                    continue
                if check(old, f"aged from {source}"):
                    with stats.lock:
                        stats.verified_aged += 1
            stop.wait(random.uniform(0.05, 0.1))  # noqa: S311


def _check_ring(items: list[dict[str, Any]], seen_at: float, stats: Stats) -> None:
    """One consistent snapshot (the listing is one script): one active, <= 1 next."""
    by_algo: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for item in items:
        by_algo[item["algo"]][item["status"]] += 1
    summary = [(k["kid"], k["algo"], k["status"]) for k in items]
    actives = [k["kid"] for k in items if k["algo"] == "rs256" and k["status"] == "active"]
    with stats.lock:
        stats.ring_checks += 1
        if len(actives) != 1:
            stats.ring_violations.append(
                f"{seen_at:.3f}: {len(actives)} active rs256 keys: {summary}"
            )
        for algo, counts in by_algo.items():
            if counts["active"] > 1 or counts["next"] > 1:
                stats.ring_violations.append(f"{seen_at:.3f}: {algo} {dict(counts)}: {summary}")
        for kid in actives:
            stats.active_kids.setdefault(kid, seen_at)
        for item in items:
            if item["status"] == "expired":
                if item["expires_at"] is None:
                    stats.ring_violations.append(
                        f"{seen_at:.3f}: expired without expires_at {item}"
                    )
                else:
                    stats.expires[item["kid"]] = _timestamp(item["expires_at"]) + 1.0


def _monitor_loop(fleet: Fleet, stats: Stats, stop: threading.Event) -> None:
    """Poll the admin API and every live replica's JWKS."""
    with httpx.Client(timeout=5.0) as http:
        while not stop.wait(MONITOR_PERIOD):
            replica = fleet.pick()
            sent = time.time()
            try:
                response = http.get(
                    f"{replica.url}/v1/realms/default/jwt_keys",
                    params={"limit": 100},
                    headers=ADMIN,
                )
            except httpx.TransportError as exc:
                with stats.lock:
                    stats.monitor_errors.append(f"{sent:.3f} {replica.name} list: {exc!r}")
                continue
            if response.status_code != 200:
                with stats.lock:
                    stats.monitor_errors.append(
                        f"{sent:.3f} {replica.name} list: {response.status_code} {response.text}"
                    )
                continue
            body = response.json()
            if body["next_cursor"] is not None:
                with stats.lock:
                    stats.ring_violations.append(f"{sent:.3f}: more than 100 keys in the ring")
            _check_ring(body["data"], sent, stats)
            for target in fleet.live():
                # A fresh fetch: what any verifier whose cache ran out gets now.
                sent = time.time()
                try:
                    jwks = http.get(f"{target.url}/.well-known/jwks.json")
                except httpx.TransportError as exc:
                    with stats.lock:
                        stats.monitor_errors.append(f"{sent:.3f} {target.name} jwks: {exc!r}")
                    continue
                kids = {str(k.get("kid")) for k in jwks.json()["keys"]}
                with stats.lock:
                    for kid, expires_at in stats.expires.items():
                        if sent <= expires_at + EXPIRY_SLACK:
                            continue
                        if kid in kids:
                            stats.jwks_violations.append(
                                f"{sent:.3f} {target.name}: {kid} still published "
                                f"{sent - expires_at:.1f} s after its expires_at"
                            )
                        else:
                            stats.gone_from.setdefault(kid, set()).add(target.name)


def test_rotation_is_invisible_to_caching_verifiers(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    assert not redis_url.rstrip("/").endswith(":6379"), "never the default server"
    assert redis_client.dbsize() == 0  # flushed by the fixture, before any replica starts
    ports = [free_port() for _ in range(REPLICAS)]
    issuer = f"http://127.0.0.1:{ports[0]}"
    replicas: list[Replica] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []
    stats = Stats()
    began = time.monotonic()
    try:
        for i, port in enumerate(ports):
            replicas.append(_start(f"replica-{i}", port, issuer, redis_url, tmp_path))
        for replica in replicas:
            wait_ready(replica.process, replica.url, replica.log, replica.name)
        fleet = Fleet(replicas)

        registered = httpx.post(
            f"{replicas[1].url}/oauth/register",
            json={"token_endpoint_auth_method": "client_secret_post", "client_name": "e2e"},
            headers=ADMIN,
            timeout=5.0,
        )
        assert registered.status_code == 201, registered.text
        client = registered.json()
        credentials = {"client_id": client["client_id"], "client_secret": client["client_secret"]}

        threads = [
            threading.Thread(
                target=_client_loop, args=(fleet, issuer, credentials, stats, stop), daemon=True
            ),
            threading.Thread(target=_monitor_loop, args=(fleet, stats, stop), daemon=True),
        ]
        for thread in threads:
            thread.start()

        started = time.monotonic()
        victim = replicas[2]
        kill_at: float | None = None
        killed_at_rotations: int | None = None
        killed_kids: set[str] = set()
        killed_wall = 0.0
        while True:
            time.sleep(0.1)
            now = time.monotonic()
            with stats.lock:
                rotations = len(stats.active_kids) - 1
                kids_now = set(stats.active_kids)
                confirmed_gone = [
                    kid
                    for kid, names in stats.gone_from.items()
                    if names >= {r.name for r in fleet.live()}
                ]
            if killed_at_rotations is None and rotations >= KILL_AFTER_ROTATIONS:
                if kill_at is None:
                    # The active key just changed: the next promotion is due in INTERVAL.
                    kill_at = now + INTERVAL - 0.2
                elif now >= kill_at:
                    fleet.remove(victim)  # no new requests go to it...
                    time.sleep(0.3)  # ...and the ones in flight finish
                    killed_wall = time.time()
                    victim.process.send_signal(signal.SIGKILL)
                    victim.process.wait(timeout=10)
                    killed_at_rotations = rotations
                    killed_kids = kids_now
                    print(f"SIGKILLed {victim.name} after {rotations} rotations")
            if killed_at_rotations is not None:
                assert victim.process.returncode == -signal.SIGKILL
            elapsed = now - started
            if elapsed >= MAX_RUN:
                break
            if elapsed >= MIN_RUN and rotations >= MIN_ROTATIONS and confirmed_gone:
                break

        stop.set()
        for thread in threads:
            thread.join(timeout=15)
            assert not thread.is_alive()
        elapsed = time.monotonic() - started

        with stats.lock:
            rotations = len(stats.active_kids) - 1
            after_kill = len(set(stats.active_kids) - killed_kids)
            promoted_after_kill = min(
                (t for kid, t in stats.active_kids.items() if kid not in killed_kids),
                default=float("nan"),
            )
            summary = (
                f"rotation e2e: {elapsed:.1f} s of traffic ({time.monotonic() - began:.1f} s "
                f"total), {rotations} rotations seen ({len(stats.active_kids)} active kids), "
                f"{after_kill} new active kids after the kill at {killed_at_rotations} "
                f"(first seen {promoted_after_kill - killed_wall:.2f} s after it); "
                f"tokens issued {stats.issued}, signed by {len(stats.signing_kids)} kids; "
                f"verified fresh {stats.verified_fresh}, verified aged {stats.verified_aged} "
                f"(skipped {stats.aged_skipped}); verifier JWKS fetches {stats.jwks_fetches}; "
                f"verification failures {len(stats.verify_failures)}, token errors "
                f"{len(stats.token_errors)}, ring checks {stats.ring_checks}, ring violations "
                f"{len(stats.ring_violations)}, JWKS expiry violations "
                f"{len(stats.jwks_violations)}, expired keys confirmed gone "
                f"{len(stats.gone_from)}, monitor errors {len(stats.monitor_errors)}"
            )
        print(summary)

        assert stats.verify_failures == [], stats.verify_failures[:10]
        assert stats.token_errors == [], stats.token_errors[:10]
        assert stats.monitor_errors == [], stats.monitor_errors[:10]
        assert stats.ring_violations == [], stats.ring_violations[:10]
        assert stats.jwks_violations == [], stats.jwks_violations[:10]
        assert stats.issued >= 500, summary
        assert stats.verified_fresh == stats.issued, summary
        assert stats.verified_aged >= 300, summary
        assert rotations >= MIN_ROTATIONS, summary
        # Tokens really were signed by the rotated keys, not only listed as active.
        assert len(stats.signing_kids) >= MIN_ROTATIONS + 1, summary
        assert killed_at_rotations is not None, summary
        assert after_kill >= MIN_ROTATIONS_AFTER_KILL, summary
        survivors = {r.name for r in fleet.live()}
        gone = [kid for kid, names in stats.gone_from.items() if names >= survivors]
        assert gone, f"no expired key was seen leaving every replica's JWKS: {summary}"
        for replica in fleet.live():
            assert replica.process.poll() is None, f"{replica.name} died: {replica.log}"
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        for replica in replicas:
            stop_service(replica.process)
