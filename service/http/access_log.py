"""The access log: one line per request, cheap enough to keep on in production.

uvicorn's access log goes through ``logging`` (a LogRecord, the caller's frame, a
formatter and a locked write per request), which cost the JWKS endpoint about a
fifth of its throughput. Here a request costs one f-string and a list append; the
lines are written in batches, at most ``flush_interval`` seconds late, and at
shutdown. The format follows uvicorn's (client, request line, status) plus the
time, so existing log parsing keeps working::

    2026-12-01T22:41:36Z 127.0.0.1:50412 "GET /.well-known/jwks.json HTTP/1.1" 200 0.21ms
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Final, TextIO
from urllib.parse import unquote_to_bytes

from starlette.types import Scope

__all__ = ["AccessLog", "request_target"]

FLUSH_INTERVAL: Final = 0.5
#: Lines held at most between writes.
_MAX_PENDING: Final = 4096


class AccessLog:
    """Buffers access log lines and writes them in batches to ``stream``."""

    def __init__(
        self, stream: TextIO | None = None, flush_interval: float = FLUSH_INTERVAL
    ) -> None:
        self._stream = stream
        self._interval = flush_interval
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""

    def record(
        self,
        client: tuple[str, int] | None,
        method: str,
        target: str,
        http_version: str,
        status: int,
        seconds: float,
    ) -> None:
        """One request: who, what, the status and how long it took."""
        now = int(time.time())
        if now != self._second:  # formatted once a second, not once a request
            self._second = now
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        who = f"{client[0]}:{client[1]}" if client else "-"
        self._lines.append(
            f'{self._stamp} {who} "{method} {target} HTTP/{http_version}" {status} '
            f"{seconds * 1000:.2f}ms"
        )
        if len(self._lines) >= _MAX_PENDING:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self.flush)

    def flush(self) -> None:
        """Write the pending lines now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        stream = self._stream or sys.stdout
        stream.write("\n".join(lines) + "\n")
        stream.flush()


def request_target(scope: Scope) -> str:
    """The request target for a log line: the path as the client sent it, still
    percent-encoded (a decoded ``%0A`` would let a caller write a line of its own),
    and the query with the values of credential parameters hidden."""
    raw: bytes | None = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope["path"].encode("unicode_escape").decode()
    query: bytes = scope["query_string"]
    return path + ("?" + _redacted(query) if query else "")


#: Query parameters whose values are credentials: never written to the access log,
#: even when a client sends them where they do not belong.
_SECRET_PARAMS: Final = frozenset(
    {
        b"client_secret",
        b"client_assertion",
        b"token",
        b"access_token",
        b"refresh_token",
        b"assertion",
        b"key",
        b"secret",
        b"password",
        b"code",
    }
)


def _redacted(query: bytes) -> str:
    """The query string for the log, with the values of credential parameters hidden."""
    if b"=" not in query:
        return query.decode("latin-1")
    parts = []
    for part in query.split(b"&"):
        name, eq, _ = part.partition(b"=")
        secret = eq and unquote_to_bytes(name.replace(b"+", b" ")).lower() in _SECRET_PARAMS
        parts.append(name + b"=[redacted]" if secret else part)
    return b"&".join(parts).decode("latin-1")
