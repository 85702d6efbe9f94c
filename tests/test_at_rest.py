"""Secrets at rest: after keys of every algo are made through the API in two realms,
nothing in Redis is a private key, a private JWK or an HS256 secret in the clear;
and sealed values open only under their KEK and in their own record.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from service.crypto import Sealer, SealError, new_kek
from tests.conftest import KEK

REALMS = ("alpha", "beta")
#: RFC 7518 §6.2.2, §6.3.2, §6.4.1 and RFC 8037 §2: members only a private or secret JWK has.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k"})
_HASH_TAG = re.compile(r"\{([^}]*)\}")
UPLOADED_ED25519 = {
    "kty": "OKP",
    "crv": "Ed25519",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}


@dataclass(frozen=True)
class Entry:
    """One Redis key, its type, and every string its value holds."""

    name: str
    type: str
    texts: tuple[str, ...]


def dump(client: redis.Redis) -> list[Entry]:
    """Every key on the server with its whole value (SCAN, TYPE, then a read by type)."""
    entries = []
    for raw_name in client.scan_iter(count=100):
        name = str(raw_name)
        kind = str(client.type(name))
        texts: list[str]
        if kind == "string":
            texts = [str(client.get(name))]
        elif kind == "zset":
            texts = [str(m) for m in client.zrange(name, 0, -1)]
        elif kind == "hash":
            texts = [str(x) for pair in client.hgetall(name).items() for x in pair]
        elif kind == "set":
            texts = [str(m) for m in client.smembers(name)]
        elif kind == "stream":
            texts = [str(x) for _id, fields in client.xrange(name) for x in fields.values()]
        else:  # a new type must be added here, not skipped
            pytest.fail(f"{name} has type {kind}, which this scan does not read")
        entries.append(Entry(name, kind, tuple(texts)))
    return entries


def json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``text``: at any offset, nested, and inside JSON-encoded strings."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        yield from _walk(value)
        start = text.find("{", end)


def _walk(value: object) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for member in value.values():
            yield from _walk(member)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, str):
        yield from json_objects(value)


def leaks(entries: list[Entry], secrets: list[str]) -> list[str]:
    """What in ``entries`` is a private key, a private JWK, or one of ``secrets``."""
    found = []
    for entry in entries:
        for text in (entry.name, *entry.texts):
            if "PRIVATE KEY" in text:
                found.append(f"{entry.name}: a PRIVATE KEY PEM")
            for obj in json_objects(text):
                private = PRIVATE_MEMBERS & set(obj)
                if private:
                    found.append(f"{entry.name}: a JSON object with {sorted(private)}")
            for secret in secrets:
                encoded = secret.encode()
                forms = (
                    secret,
                    base64.b64encode(encoded).decode().rstrip("="),
                    base64.urlsafe_b64encode(encoded).decode().rstrip("="),
                    encoded.hex(),
                )
                if any(form in text for form in forms):
                    found.append(f"{entry.name}: an HS256 secret")
    return found


@dataclass(frozen=True)
class Made:
    """Keys made through the API."""

    keys: dict[str, dict[str, Any]]  # id → the 201 body
    realm_of: dict[str, str]  # id → realm
    hs256_secrets: list[str]


@pytest.fixture
def made(client: TestClient, admin: dict[str, str]) -> Made:
    """rs256, es256, eddsa, a generated and a supplied hs256 key, and an upload, per realm."""
    keys: dict[str, dict[str, Any]] = {}
    realm_of: dict[str, str] = {}
    hs256_secrets = []
    for realm in REALMS:
        assert client.post("/v1/realms", json={"name": realm}, headers=admin).status_code == 201
        supplied = f"{realm}-supplied-hs256-secret-0123456789abcdef"
        bodies: list[dict[str, Any]] = [
            {"algo": "rs256"},
            {"algo": "es256"},
            {"algo": "eddsa"},
            {"algo": "hs256"},
            {"algo": "hs256", "key": supplied},
            {"public_key": UPLOADED_ED25519},
        ]
        for body in bodies:
            response = client.post(f"/v1/realms/{realm}/jwt_keys", json=body, headers=admin)
            assert response.status_code == 201, response.text
            key = response.json()
            keys[key["id"]] = key
            realm_of[key["id"]] = realm
            if key["algo"] == "hs256":
                hs256_secrets.append(key["key"])
        assert supplied in hs256_secrets
        # The realm's first key (made with the realm) is stored too: sealed the same way.
        for key in client.get(f"/v1/realms/{realm}/jwt_keys", headers=admin).json()["data"]:
            keys.setdefault(key["id"], key)
            realm_of[key["id"]] = realm
    assert len(hs256_secrets) == 4 and len(set(hs256_secrets)) == 4
    return Made(keys, realm_of, hs256_secrets)


def stored_records(entries: list[Entry]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Key records found in the dump, by id, with the realm of their hash tag."""
    records: dict[str, tuple[str, dict[str, Any]]] = {}
    for entry in entries:
        tag = _HASH_TAG.search(entry.name)
        for text in entry.texts:
            for obj in json_objects(text):
                if {"id", "kid", "algo", "status", "sealed_secret"} <= set(obj):
                    assert tag is not None, entry.name
                    records[obj["id"]] = (tag.group(1), obj)
    return records


def test_nothing_private_in_redis(made: Made, redis_client: redis.Redis) -> None:
    entries = dump(redis_client)
    # The scan saw every realm and every key: otherwise "nothing found" would prove nothing.
    assert {m.group(1) for e in entries if (m := _HASH_TAG.search(e.name))} >= set(REALMS)
    assert set(stored_records(entries)) >= set(made.keys)
    assert leaks(entries, made.hs256_secrets) == []


def test_sealed_secrets_open_only_with_the_kek_in_their_own_record(
    made: Made, redis_client: redis.Redis
) -> None:
    records = stored_records(dump(redis_client))
    sealer, stranger = Sealer(base64.b64decode(KEK)), Sealer(new_kek())
    sealed = {
        key_id: (realm, record)
        for key_id, (realm, record) in records.items()
        if key_id in made.keys and made.keys[key_id]["status"] != "verify_only"
    }
    # Per realm: its first key, three generated key pairs and two hs256 keys.
    assert len(sealed) == 6 * len(REALMS)
    opened_secrets = []
    for key_id, (realm, record) in sealed.items():
        assert realm == made.realm_of[key_id]
        aad = f"{realm}/{key_id}".encode()
        plaintext = sealer.open(record["sealed_secret"], aad).decode()
        if record["algo"] == "hs256":
            opened_secrets.append(plaintext)
        else:
            private = json.loads(plaintext)
            assert "d" in private
            public = made.keys[key_id]["public_jwk"]
            material = [m for m in ("kty", "crv", "n", "e", "x", "y") if m in public]
            assert {m: private.get(m) for m in material} == {m: public[m] for m in material}
        with pytest.raises(SealError):
            stranger.open(record["sealed_secret"], aad)
    assert sorted(opened_secrets) == sorted(made.hs256_secrets)

    # A ciphertext copied into another record (same realm, or another realm) does not open.
    ids = sorted(sealed)
    for source, target in zip(ids, ids[1:] + ids[:1], strict=True):
        copied = sealed[source][1]["sealed_secret"]
        target_aad = f"{sealed[target][0]}/{target}".encode()
        with pytest.raises(SealError):
            sealer.open(copied, target_aad)
    for key_id, (realm, record) in sealed.items():
        other_realm = next(r for r in REALMS if r != realm)
        with pytest.raises(SealError):
            sealer.open(record["sealed_secret"], f"{other_realm}/{key_id}".encode())

    uploaded = [
        r for i, (_, r) in records.items() if made.keys.get(i, {}).get("status") == "verify_only"
    ]
    assert len(uploaded) == len(REALMS)
    assert all(r["sealed_secret"] is None for r in uploaded)


def test_the_scan_finds_what_it_looks_for(redis_client: redis.Redis) -> None:
    """The detector itself: each kind of leak, in each type of value, is reported."""
    secret = "an-hs256-secret-that-must-not-be-stored-in-clear"
    private_jwk = json.dumps({"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "c"})
    redis_client.set("plain", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----")
    redis_client.hset("record", mapping={"value": json.dumps({"inner": private_jwk})})
    redis_client.zadd("index", {json.dumps([{"kty": "oct", "k": "x"}]): 0})
    redis_client.set("prefixed", "plain:" + private_jwk)
    redis_client.set("b64", base64.b64encode(secret.encode()).decode())
    redis_client.set(f"name:{secret}", "x")
    found = leaks(dump(redis_client), [secret])
    assert sorted(found) == sorted(
        [
            "plain: a PRIVATE KEY PEM",
            "record: a JSON object with ['d']",
            "prefixed: a JSON object with ['d']",
            f"index: a JSON object with {['k']}",
            "b64: an HS256 secret",
            f"name:{secret}: an HS256 secret",
        ]
    )
    redis_client.rpush("list", "x")
    with pytest.raises(pytest.fail.Exception):
        dump(redis_client)
