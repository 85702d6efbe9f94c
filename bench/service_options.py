"""The server options the service runs with, so the reference app runs with the same."""

from __future__ import annotations

from typing import Any

__all__ = ["server_options"]


def server_options(host: str, port: int) -> dict[str, Any]:
    """uvicorn options as ``jwks-service serve`` sets them, with uvicorn's access log off.

    The reference app logs nothing; a service that logs each request pays for it in
    its ratio.
    """
    try:
        from service.cli import uvicorn_options
    except ImportError:  # a service from before it named its options: what serve passed then
        options: dict[str, Any] = {"host": host, "port": port, "proxy_headers": True}
    else:
        options = uvicorn_options(host, port, workers=1)
    options.update(access_log=False, log_level="warning")
    return options
