"""The whole app, from settings, on each topology: JWKS_REDIS_URL is all it takes."""

from __future__ import annotations

from collections.abc import Callable

from starlette.testclient import TestClient


def test_app_runs_on_each_topology(
    make_client: Callable[..., TestClient], topology_url: str, admin: dict[str, str]
) -> None:
    client = make_client(redis_url=topology_url)
    assert client.post("/v1/realms", json={"name": "acme"}, headers=admin).status_code == 201
    names = [r["name"] for r in client.get("/v1/realms", headers=admin).json()["data"]]
    assert names == ["acme", "default"]
    jwks = client.get("/realms/acme/.well-known/jwks.json")
    assert jwks.status_code == 200 and len(jwks.json()["keys"]) >= 1
