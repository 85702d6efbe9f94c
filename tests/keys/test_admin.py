"""Admin keys: a realm-scoped key lives and dies with its realm (on every topology)."""

from __future__ import annotations

import base64

import pytest

from service import crypto
from service.errors import Unauthorized
from service.keys import AdminKeys, KeyManager, RealmNotFound
from service.storage.redis import RedisStore
from tests.conftest import KEK, FakeClock


def manager(store: RedisStore, clock: FakeClock) -> KeyManager:
    return KeyManager(store, crypto.Sealer(base64.b64decode(KEK)), clock, grace=3600)


async def test_a_realm_scoped_key_does_not_outlive_its_realm(store: RedisStore) -> None:
    """Deleted with its realm, the key is refused, also once a realm of that name is
    created again; keys of other realms and global keys go on working."""
    clock = FakeClock()
    keys, admins = manager(store, clock), AdminKeys(store, clock)
    await keys.create_realm("acme")
    await keys.create_realm("other")
    _, old = await admins.create("acme")
    _, neighbour = await admins.create("other")
    _, everywhere = await admins.create()
    assert (await admins.authenticate(old)).realm == "acme"
    await keys.delete_realm("acme")
    with pytest.raises(Unauthorized):
        await admins.authenticate(old)
    await keys.create_realm("acme")
    with pytest.raises(Unauthorized):
        await admins.authenticate(old)
    _, new = await admins.create("acme")
    assert (await admins.authenticate(new)).realm == "acme"
    assert (await admins.authenticate(neighbour)).realm == "other"
    assert (await admins.authenticate(everywhere)).realm is None


async def test_no_key_for_a_realm_that_does_not_exist(store: RedisStore) -> None:
    """Else a key made ahead of a realm would act on whichever realm takes the name."""
    with pytest.raises(RealmNotFound):
        await AdminKeys(store, FakeClock()).create("nope")
