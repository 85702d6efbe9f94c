"""The limit for HTTP rows: a bare ASGI app that answers every request with fixed bytes.

It does only what no server can avoid (read the request, send prebuilt headers and
body), so the service's ratio to it is what the service adds. Run it the way the
service runs (``python -m bench.reference --port P [--server granian]``), with the
body and headers of a real JWKS answer from the file named by ``BENCH_BODY``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["app"]

_spec: dict[str, Any] = json.loads(Path(os.environ["BENCH_BODY"]).read_text())
_BODY: bytes = _spec["body"].encode()
_HEADERS: list[tuple[bytes, bytes]] = [
    (k.encode("latin-1"), v.encode("latin-1")) for k, v in _spec["headers"]
] + [(b"content-length", str(len(_BODY)).encode())]
_START = {"type": "http.response.start", "status": 200, "headers": _HEADERS}
_SEND = {"type": "http.response.body", "body": _BODY}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer HTTP with the fixed response; complete the lifespan."""
    if scope["type"] == "http":
        await send(_START)
        await send(_SEND)
        return
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    """Serve :data:`app` under uvicorn (the service's own server options) or granian."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    args = parser.parse_args()
    if args.server == "granian":
        from granian.constants import Interfaces
        from granian.server import Server

        Server(
            "bench.reference:app",
            address="127.0.0.1",
            port=args.port,
            interface=Interfaces.ASGI,
            log_access=False,
        ).serve()
        return
    import uvicorn

    from bench.service_options import server_options

    uvicorn.run("bench.reference:app", **server_options("127.0.0.1", args.port))


if __name__ == "__main__":
    main()
