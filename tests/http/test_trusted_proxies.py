"""X-Forwarded-For is believed from the configured proxies only."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from service.cli import uvicorn_options
from service.config import ConfigError, Settings
from tests._service import free_port, start_service, stop, wait_ready

pytestmark = pytest.mark.skipif(
    os.environ.get("TEST_ASGI_SERVER") == "granian",
    reason="X-Forwarded-For is read by uvicorn (proxy_headers); granian is only a reference",
)


def test_no_proxy_is_trusted_unless_configured() -> None:
    options = uvicorn_options("127.0.0.1", 8000, 1, Settings())
    assert options["proxy_headers"] is False
    trusting = uvicorn_options(
        "127.0.0.1", 8000, 1, Settings.from_env({"JWKS_TRUSTED_PROXIES": "10.0.0.0/8, ::1"})
    )
    assert trusting["proxy_headers"] is True
    assert trusting["forwarded_allow_ips"] == ["10.0.0.0/8", "::1"]
    with pytest.raises(ConfigError, match="JWKS_TRUSTED_PROXIES"):
        Settings.from_env({"JWKS_TRUSTED_PROXIES": "10.0.0.0/33"})


def _logged_client(redis_url: str, tmp_path: Path, **variables: str) -> str:
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    process = start_service(port, redis_url, tmp_path / "data", log, **variables)
    try:
        wait_ready(process, f"http://127.0.0.1:{port}", log)
        response = httpx.get(
            f"http://127.0.0.1:{port}/.well-known/jwks.json",
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        assert response.status_code == 200
        time.sleep(0.7)  # the access log writes at most 0.5 s late
    finally:
        stop(process)
    line = next(x for x in log.read_text().splitlines() if "/.well-known/jwks.json" in x)
    return line


def test_the_peer_is_the_client_when_no_proxy_is_trusted(redis_url: str, tmp_path: Path) -> None:
    line = _logged_client(redis_url, tmp_path)
    assert "203.0.113.9" not in line and "127.0.0.1" in line, line


def test_a_trusted_proxy_names_the_client(redis_url: str, tmp_path: Path) -> None:
    line = _logged_client(redis_url, tmp_path, JWKS_TRUSTED_PROXIES="127.0.0.1")
    assert "203.0.113.9" in line, line
