"""The key-ring tests run on every topology: single server, Cluster and Sentinel."""

from __future__ import annotations

import pytest

from service.storage.redis import RedisStore


@pytest.fixture
def store(topology_store: RedisStore) -> RedisStore:
    """The store of each topology in turn (see ``topology_url`` in tests/conftest.py)."""
    return topology_store
