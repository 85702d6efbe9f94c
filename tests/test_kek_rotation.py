"""KEK rotation: ``JWKS_KEK`` with several ids, sealed values that name their KEK, the
start-up check of the KEK ids a store uses, and ``rekey`` (resumable, realm by realm
through the compare-and-swap), on a real store; the parts that touch rings run on
every topology (single server, Cluster, Sentinel).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from service import crypto
from service.audit import AuditEvent
from service.config import ConfigError, Settings
from service.keys import (
    GenerateKey,
    ImportSecret,
    KeyManager,
    RekeyReport,
    TokenSigner,
    sealed_aad,
)
from service.models import ALGOS, KeyRecord, KeyRing
from service.storage.redis import RedisStore, connect
from tests.conftest import KEK, FakeClock
from tests.test_cli import assert_ok, assert_one_line_error, cli_env, run_cli

#: The suite's KEK, given alone: the KEK with the default id, "0".
OLD = base64.b64decode(KEK)
NEW = bytes(range(100, 132))
OLD_B64, NEW_B64 = KEK, base64.b64encode(NEW).decode()
Kek = tuple[str, bytes]
OLD_KEK: Kek = ("0", OLD)
NEW_KEK: Kek = ("k1", NEW)
GRACE = 3600
SECRET = b'{"kty":"OKP","crv":"Ed25519","d":"private"}'
AAD = b"acme/jky_x"
#: Sealed secrets per realm made by ``populate``: its first rs256 key, es256, eddsa,
#: a generated hs256 key and the imported hs256 secret that retired it.
SEALED_PER_REALM = 5


def sealer(first: Kek, *previous: Kek) -> crypto.Sealer:
    return crypto.Sealer(first[1], kek_id=first[0], previous=previous)


def manager(store: RedisStore, first: Kek, *previous: Kek) -> KeyManager:
    return KeyManager(store, sealer(first, *previous), FakeClock(), grace=GRACE)


async def populate(m: KeyManager, realms: tuple[str, ...]) -> None:
    """Each realm: its first rs256 key, es256, eddsa, hs256 generated, then hs256 imported."""
    for realm in realms:
        await m.create_realm(realm)
        for algo in ("es256", "eddsa", "hs256"):
            await m.create_key(realm, GenerateKey(algo))
        await m.create_key(realm, ImportSecret(f"{realm}-imported-hs256-secret-0123456789ab"))


async def ring_of(store: RedisStore, realm: str) -> KeyRing:
    ring = await store.load_ring(realm)
    assert ring is not None
    return ring


def sealed(ring: KeyRing) -> list[KeyRecord]:
    return [k for k in ring.keys if k.sealed_secret is not None]


def kek_ids(ring: KeyRing) -> set[str]:
    """The KEK ids the ring's sealed secrets name."""
    return {crypto.sealed_kek_id(k.sealed_secret or "") for k in sealed(ring)}


def without_secret(ring: KeyRing) -> list[tuple[Any, ...]]:
    """Everything about the keys but their ciphertexts, in a stable order."""
    return sorted(
        (k.id, k.kid, k.algo, k.status, json.dumps(k.public_jwk), k.expires_at) for k in ring.keys
    )


async def sign_and_verify(signer: TokenSigner, realm: str) -> dict[str, str]:
    """A token of each algo, signed and verified: the kid that signed, by algo."""
    kids: dict[str, str] = {}
    for algo in ALGOS:
        token = await signer.sign(realm, {"sub": realm}, typ="JWT", algo=algo)
        _claims, key = await signer.verify(realm, token)
        kids[algo] = key.kid
    return kids


# JWKS_KEK ----------------------------------------------------------------------


def test_a_list_of_keks_is_parsed_in_order() -> None:
    settings = Settings.from_env({"JWKS_KEK": f" k1:{NEW_B64} , 0:{OLD_B64}\n"})
    assert (settings.kek_id, settings.kek, settings.previous_keks) == ("k1", NEW, (OLD_KEK,))
    three = Settings.from_env({"JWKS_KEK": f"a:{NEW_B64},b-2:{OLD_B64},C_3:{NEW_B64}"})
    assert [three.kek_id, *(i for i, _key in three.previous_keks)] == ["a", "b-2", "C_3"]


def test_one_key_alone_is_the_kek_with_id_0() -> None:
    alone = Settings.from_env({"JWKS_KEK": OLD_B64})
    assert (alone.kek_id, alone.kek, alone.previous_keks) == ("0", OLD, ())
    assert Settings.from_env({"JWKS_KEK": f"0:{OLD_B64}"}) == alone
    assert Settings.from_env({}).kek_id == "0"


def test_key_bytes_are_not_in_the_settings_repr() -> None:
    text = repr(Settings.from_env({"JWKS_KEK": f"k1:{NEW_B64},0:{OLD_B64}"}))
    assert "k1" in text
    for key in (NEW, OLD):
        assert repr(key) not in text and base64.b64encode(key).decode() not in text


URLSAFE_B64 = base64.urlsafe_b64encode(b"\xfb" * 32).decode()
BAD_KEKS = {
    "duplicate-id": (f"k1:{NEW_B64},k1:{OLD_B64}", "entry 2 of 2: has the same id as entry 1"),
    "short-key": (f"k1:{NEW_B64},0:{base64.b64encode(bytes(31)).decode()}", "entry 2 of 2"),
    "long-key": (f"k1:{base64.b64encode(bytes(33)).decode()}", "exactly 32 bytes"),
    "bad-base64": (f"k1:{NEW_B64},0:!{OLD_B64[1:]}", "entry 2 of 2: must be the base64"),
    "urlsafe-base64": (f"k1:{URLSAFE_B64}", "base64"),
    "no-id": (f":{NEW_B64}", "the id must be"),
    "dot-in-id": (f"k.1:{NEW_B64}", "the id must be"),
    "long-id": ("k" * 33 + f":{NEW_B64}", "the id must be"),
    "key-before-id": (f"{NEW_B64}:k1", "the id must be"),
    "no-colon": (f"k1:{NEW_B64},{OLD_B64}", "entry 2 of 2: must be <id>:<base64"),
    "empty-entry": (f"k1:{NEW_B64},,0:{OLD_B64}", "entry 2 of 3"),
    "trailing-comma": (f"k1:{NEW_B64},", "entry 2 of 2"),
    "single-short": (base64.b64encode(bytes(16)).decode(), "exactly 32 bytes"),
}


@pytest.mark.parametrize(("raw", "says"), BAD_KEKS.values(), ids=BAD_KEKS.keys())
def test_bad_kek_lists_are_a_clear_error_quoting_no_key(raw: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"JWKS_KEK": raw})
    message = str(caught.value)
    assert message.startswith("JWKS_KEK: ") and says in message
    keys = [entry.partition(":")[2] or entry for entry in raw.split(",")]
    for key in (NEW_B64, OLD_B64, raw, *(k.strip() for k in keys if k.strip())):
        assert key not in message


# Sealed values ------------------------------------------------------------------


def test_values_name_their_kek_and_open_under_any_configured_one() -> None:
    old, rotated = sealer(OLD_KEK), sealer(NEW_KEK, OLD_KEK)
    legacy = old.seal(SECRET, AAD)
    assert legacy.startswith("v1.") and crypto.sealed_kek_id(legacy) == "0"
    current = rotated.seal(SECRET, AAD)
    assert current.startswith("v2.k1.") and crypto.sealed_kek_id(current) == "k1"
    assert rotated.kek_id == "k1" and rotated.kek_ids == {"k1", "0"}
    assert rotated.open(legacy, AAD) == rotated.open(current, AAD) == SECRET
    assert not rotated.is_current(legacy) and rotated.is_current(current)
    resealed = rotated.reseal(legacy, AAD)
    assert resealed.startswith("v2.k1.") and sealer(NEW_KEK).open(resealed, AAD) == SECRET
    with pytest.raises(crypto.MissingKek) as caught:
        old.open(current, AAD)
    assert caught.value.kek_id == "k1"
    with pytest.raises(crypto.SealError):  # the record binding still holds
        rotated.open(resealed, b"other/jky_x")


def test_the_kek_id_cannot_be_changed_in_a_value() -> None:
    # The same key under two ids: only the header's binding tells them apart.
    twins = sealer(("a", NEW), ("b", NEW), ("0", NEW))
    value = twins.seal(SECRET, AAD)
    body = value.removeprefix("v2.a.")
    for relabelled in (f"v2.b.{body}", f"v1.{body}"):
        with pytest.raises(crypto.SealError):
            twins.open(relabelled, AAD)
    for malformed in ("v2.k1", "v2..AAAA", "v2.k!.AAAA", "v3.k1.AAAA"):
        with pytest.raises(crypto.SealError):
            crypto.sealed_kek_id(malformed)


@pytest.mark.parametrize(
    "previous",
    [[("a", OLD)], [("b", OLD), ("b", NEW)], [("b.c", OLD)], [("b", bytes(31))]],
    ids=["same-as-first", "twice", "bad-id", "short-key"],
)
def test_a_sealer_refuses_bad_or_duplicate_ids(previous: list[Kek]) -> None:
    with pytest.raises(crypto.SealError):
        crypto.Sealer(NEW, kek_id="a", previous=previous)


# The store's record of KEK ids -----------------------------------------------------


async def test_the_store_records_kek_ids(topology_store: RedisStore) -> None:
    store = topology_store
    assert await store.kek_ids() == frozenset()
    await store.add_kek_id("0")
    await store.add_kek_id("k1")
    await store.add_kek_id("k1")
    assert await store.kek_ids() == {"0", "k1"}
    await store.remove_kek_ids(["0", "never"])
    await store.remove_kek_ids([])
    assert await store.kek_ids() == {"k1"}
    assert await store.kek_check("first") == "first"
    await store.replace_kek_check("second")
    assert await store.kek_check("third") == "second"


# Reading old, writing new ------------------------------------------------------------


async def test_with_new_and_old_keks_old_keys_serve_and_new_ones_seal_under_new(
    topology_store: RedisStore,
) -> None:
    store = topology_store
    old = manager(store, OLD_KEK)
    await old.check_kek()
    await populate(old, ("acme",))
    before = await ring_of(store, "acme")
    assert kek_ids(before) == {"0"}

    rotated = manager(store, NEW_KEK, OLD_KEK)
    await rotated.check_kek()
    assert await store.kek_ids() == {"0", "k1"}
    signer = TokenSigner(rotated, FakeClock())
    try:
        kids = await sign_and_verify(signer, "acme")
        assert kids == {a: k.kid for a in ALGOS if (k := before.active(a)) is not None}
        created = await rotated.create_key("acme", GenerateKey("es256"))
        assert (created.key.sealed_secret or "").startswith("v2.k1.")
        assert (await sign_and_verify(signer, "acme"))["es256"] == created.key.kid
    finally:
        signer.close()
    after = await ring_of(store, "acme")
    # Only the new key is under the new KEK; nothing old was sealed again.
    under_new = {k.id for k in sealed(after) if crypto.sealed_kek_id(k.sealed_secret or "") == "k1"}
    assert under_new == {created.key.id}


# rekey ---------------------------------------------------------------------------------


async def test_rekey_seals_every_secret_under_the_first_kek_and_changes_no_key(
    topology_store: RedisStore,
) -> None:
    store = topology_store
    realms = ("acme", "beta", "gamma")
    old = manager(store, OLD_KEK)
    await old.check_kek()
    await populate(old, realms)
    m = manager(store, NEW_KEK, OLD_KEK)
    await m.check_kek()
    before = {r: await ring_of(store, r) for r in realms}
    jwks = {r: (await m.jwks(r)).body for r in realms}
    signer = TokenSigner(m, FakeClock())
    try:
        kids = {r: await sign_and_verify(signer, r) for r in realms}
        tokens = {
            (r, a): await signer.sign(r, {"sub": r}, typ="JWT", algo=a)
            for r in realms
            for a in ALGOS
        }
        seen: list[RekeyReport] = []
        report = await m.rekey(progress=seen.append)

        total = SEALED_PER_REALM * len(realms)
        assert report == RekeyReport(realms=3, resealed=total, current=0, retired=("0",))
        assert [(p.realms, p.resealed) for p in seen] == [(1, 5), (2, 10), (3, 15)]
        only_new = sealer(NEW_KEK)
        for realm in realms:
            after = await ring_of(store, realm)
            assert without_secret(after) == without_secret(before[realm])
            assert kek_ids(after) == {"k1"}
            for key in sealed(after):
                old_value = before[realm].by_id(key.id)
                assert old_value is not None and old_value.sealed_secret != key.sealed_secret
                aad = sealed_aad(realm, key.id)
                assert only_new.open(key.sealed_secret or "", aad) == sealer(OLD_KEK).open(
                    old_value.sealed_secret or "", aad
                )
            # The same JWKS, the same kids sign, and tokens signed before still verify.
            assert (await m.jwks(realm)).body == jwks[realm]
            assert await sign_and_verify(signer, realm) == kids[realm]
            for algo in ALGOS:
                _claims, key = await signer.verify(realm, tokens[realm, algo])
                assert key.kid == kids[realm][algo]
    finally:
        signer.close()
    assert await store.kek_ids() == {"k1"}
    assert crypto.sealed_kek_id(await store.kek_check("unused")) == "k1"

    # Idempotent: a second run reseals nothing and writes no ring.
    versions = await store.ring_versions(realms)
    again = await m.rekey()
    assert again == RekeyReport(realms=3, resealed=0, current=total, retired=())
    assert await store.ring_versions(realms) == versions


async def test_a_rekey_interrupted_halfway_resumes_and_finishes(store: RedisStore) -> None:
    realms = ("a", "b", "c", "d")
    old = manager(store, OLD_KEK)
    await old.check_kek()
    await populate(old, realms)
    m = manager(store, NEW_KEK, OLD_KEK)
    await m.check_kek()

    class Interrupted(Exception):
        pass

    def stop_after_two(progress: RekeyReport) -> None:
        if progress.realms == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        await m.rekey(progress=stop_after_two)
    assert [kek_ids(await ring_of(store, r)) for r in realms] == [{"k1"}, {"k1"}, {"0"}, {"0"}]
    # Halfway, nothing is forgotten: the old KEK is still needed, and still serves.
    assert await store.kek_ids() == {"0", "k1"}
    with pytest.raises(crypto.MissingKek, match="'0'"):
        await manager(store, NEW_KEK).check_kek()
    signer = TokenSigner(m, FakeClock())
    try:
        for realm in realms:
            await sign_and_verify(signer, realm)
    finally:
        signer.close()

    resumed = await m.rekey()
    assert resumed == RekeyReport(realms=4, resealed=10, current=10, retired=("0",))
    assert [kek_ids(await ring_of(store, r)) for r in realms] == [{"k1"}] * 4
    assert (await m.rekey()).resealed == 0


async def test_after_a_rekey_only_the_new_kek_is_needed(store: RedisStore) -> None:
    old = manager(store, OLD_KEK)
    await old.check_kek()
    await populate(old, ("acme",))
    await manager(store, NEW_KEK, OLD_KEK).rekey()

    fresh = manager(store, NEW_KEK)
    await fresh.check_kek()
    signer = TokenSigner(fresh, FakeClock())
    try:
        assert set(await sign_and_verify(signer, "acme")) == set(ALGOS)
    finally:
        signer.close()
    prepared = await fresh.prepared("acme")
    live = [k for k in prepared.ring.keys if k.status != "verify_only"]
    assert len(prepared.verifiers) == len(live) == SEALED_PER_REALM
    # The old KEK alone is refused now: the store's secrets are under k1.
    with pytest.raises(crypto.MissingKek, match="'k1'"):
        await manager(store, OLD_KEK).check_kek()


async def test_a_ring_change_during_the_rekey_is_not_lost(
    topology_store: RedisStore, topology_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another replica rotates between the rekey's load and its save: the rekey's
    compare-and-swap fails, it reloads and seals again, and the rotation stays."""
    store = topology_store
    old = manager(store, OLD_KEK)
    await old.check_kek()
    await populate(old, ("acme",))
    before = (await ring_of(store, "acme")).active("es256")
    assert before is not None
    replica_store = connect(topology_url)
    replica = manager(replica_store, NEW_KEK, OLD_KEK)
    saves: list[bool] = []
    rotated: list[KeyRecord] = []
    save = store.save_ring

    async def racing(
        ring: KeyRing,
        put: list[KeyRecord],
        delete: list[KeyRecord],
        now: float,
        *,
        events: tuple[AuditEvent, ...] = (),
    ) -> bool:
        if not rotated:
            rotated.append((await replica.rotate_key("acme", "es256", immediate=True)).key)
        saves.append(await save(ring, put, delete, now, events=events))
        return saves[-1]

    monkeypatch.setattr(store, "save_ring", racing)
    try:
        report = await manager(store, NEW_KEK, OLD_KEK).rekey()
    finally:
        await replica_store.close()
    assert saves == [False, True]
    # The replica's new key was sealed under k1 already; the rest are sealed again.
    assert report == RekeyReport(realms=1, resealed=SEALED_PER_REALM, current=1, retired=("0",))
    ring = await ring_of(store, "acme")
    es256 = {k.id: k.status for k in ring.keys if k.algo == "es256"}
    assert es256 == {before.id: "expired", rotated[0].id: "active"}
    assert kek_ids(ring) == {"k1"}


async def test_rekey_racing_writers_leaves_every_key_once_and_under_the_new_kek(
    topology_store: RedisStore, topology_url: str
) -> None:
    store = topology_store
    old = manager(store, OLD_KEK)
    await old.check_kek()
    await populate(old, ("acme",))
    replica_store = connect(topology_url)
    replica = manager(replica_store, NEW_KEK, OLD_KEK)
    try:
        report, *_created = await asyncio.gather(
            manager(store, NEW_KEK, OLD_KEK).rekey(),
            *(replica.create_key("acme", GenerateKey("es256")) for _ in range(6)),
        )
    finally:
        await replica_store.close()
    assert isinstance(report, RekeyReport)
    ring = await ring_of(store, "acme")
    assert sum(k.algo == "es256" for k in ring.keys) == 7
    assert sum(k.algo == "es256" and k.status == "active" for k in ring.keys) == 1
    assert kek_ids(ring) == {"k1"}


async def test_a_rekeyed_ring_keeps_its_key_handles(
    store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Same material, new ciphertext: the cache keeps the handles it had, and a process
    that could not open a key before opens it once it is under a KEK it has."""
    old = manager(store, OLD_KEK)
    await old.check_kek()
    await populate(old, ("acme",))
    m = manager(store, NEW_KEK, OLD_KEK)
    lacking = manager(store, NEW_KEK)  # not started through check_kek: it would refuse
    before = await m.prepared("acme")
    with caplog.at_level(logging.ERROR):
        assert dict((await lacking.prepared("acme")).signing) == {}
    assert "sealed under KEK '0', which is not configured" in caplog.text

    await m.rekey()
    after = await m.prepared("acme")
    assert after.ring.version != before.ring.version
    assert set(after.signing) == set(ALGOS)
    for algo in ALGOS:
        assert after.signing[algo] is before.signing[algo]
    for kid, verifier in before.verifiers.items():
        assert after.verifiers[kid].handle is verifier.handle
    lacking.cache.invalidate("acme")  # what the change feed does
    assert set((await lacking.prepared("acme")).signing) == set(ALGOS)


# Start-up ------------------------------------------------------------------------------


async def test_a_start_missing_a_kek_the_data_uses_names_it_and_nothing_else(
    store: RedisStore, redis_client: redis.Redis
) -> None:
    old = manager(store, OLD_KEK)
    await old.check_kek()
    await populate(old, ("acme",))
    with pytest.raises(crypto.MissingKek) as caught:
        await manager(store, NEW_KEK).check_kek()
    assert str(caught.value) == (
        "the store holds secrets sealed under KEK '0', which JWKS_KEK does not contain"
    )
    assert caught.value.kek_id == "0"
    assert await store.kek_ids() == {"0"}  # the refused start recorded nothing

    # A store written before KEK ids existed has no id set: its check value says "0".
    redis_client.delete("jwks:kek-ids")
    with pytest.raises(crypto.MissingKek, match=r"^the store holds secrets sealed under KEK '0',"):
        await manager(store, NEW_KEK).check_kek()
    await old.check_kek()

    # Once a replica seals under k1, a start with the old KEK alone is refused, naming k1.
    rotated = manager(store, NEW_KEK, OLD_KEK)
    await rotated.check_kek()
    await rotated.create_key("acme", GenerateKey("es256"))
    with pytest.raises(crypto.MissingKek) as caught:
        await manager(store, OLD_KEK).check_kek()
    assert str(caught.value) == (
        "the store holds secrets sealed under KEK 'k1', which JWKS_KEK does not contain"
    )
    with pytest.raises(crypto.MissingKek, match="KEKs '0', 'k1'"):
        await manager(store, ("k2", bytes(32))).check_kek()
    # Another key under a known id is the mismatch error, which names the id.
    with pytest.raises(crypto.SealError) as mismatch:
        await manager(store, NEW_KEK, ("0", bytes(32))).check_kek()
    assert not isinstance(mismatch.value, crypto.MissingKek)
    assert "JWKS_KEK does not match" in str(mismatch.value) and "'0'" in str(mismatch.value)


# The command line ----------------------------------------------------------------------


def rekey_env(data_dir: Path, redis_url: str, kek: str, **variables: str) -> dict[str, str]:
    return cli_env(data_dir, JWKS_REDIS_URL=redis_url, JWKS_KEK=kek, **variables)


@pytest.fixture
def old_store(redis_client: redis.Redis, redis_url: str) -> Callable[[], None]:
    """Fill the (flushed) test server as the old KEK would: realm acme, sealed under "0"."""

    def fill() -> None:
        async def run() -> None:
            store = connect(redis_url)
            try:
                old = manager(store, OLD_KEK)
                await old.check_kek()
                await populate(old, ("acme",))
            finally:
                await store.close()

        asyncio.run(run())

    return fill


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["admin-key", "create"], ["rekey"]])
def test_a_command_missing_a_kek_is_one_line_naming_it(
    command: list[str], old_store: Callable[[], None], redis_url: str, tmp_path: Path
) -> None:
    old_store()
    env = rekey_env(tmp_path / "data", redis_url, f"k1:{NEW_B64}")
    line = assert_one_line_error(run_cli(*command, env=env))
    assert line == (
        "jwks-service: the store holds secrets sealed under KEK '0', "
        "which JWKS_KEK does not contain"
    )


def test_the_rekey_command_reports_counts_and_is_idempotent(
    old_store: Callable[[], None], redis_url: str, tmp_path: Path
) -> None:
    old_store()
    data_dir = tmp_path / "data"
    both = rekey_env(data_dir, redis_url, f"k1:{NEW_B64},0:{OLD_B64}")
    first = run_cli("rekey", env=both)
    assert_ok(first)
    # The start made the default realm, its first key sealed under k1 already.
    assert json.loads(first.stdout) == {
        "realms": 2,
        "resealed": SEALED_PER_REALM,
        "current": 1,
        "retired": ["0"],
    }
    assert "rekey: 2 realms, 5 secrets sealed again" in first.stderr
    assert "nothing is sealed under KEK '0' any more" in first.stderr
    second = run_cli("rekey", env=both)
    assert_ok(second)
    assert json.loads(second.stdout) == {"realms": 2, "resealed": 0, "current": 6, "retired": []}
    for result in (first, second):
        assert NEW_B64 not in result.stdout + result.stderr
        assert OLD_B64 not in result.stdout + result.stderr
    only_new = rekey_env(data_dir, redis_url, f"k1:{NEW_B64}")
    assert_ok(run_cli("admin-key", "create", env=only_new))


def test_rekey_is_in_the_help() -> None:
    result = run_cli("--help", env=cli_env(Path("unused")))
    assert_ok(result)
    assert "rekey" in result.stdout
