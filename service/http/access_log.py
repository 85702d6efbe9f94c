"""The access log: one line per request, cheap enough to keep on in production.

uvicorn's access log goes through ``logging`` (a LogRecord, the caller's frame, a
formatter and a locked write per request), which cost the JWKS endpoint about a
fifth of its throughput. Here a request costs one f-string and a list append; the
lines are written in batches, at most ``flush_interval`` seconds late, and at
shutdown. JSON (``JWKS_LOG_FORMAT=json``, the default), one object per line::

    {"time":"2026-12-02T05:40:11.031Z","logger":"access","request_id":"6f1c0a9e5b7d2c44",
     "client":"10.0.3.7:50412","method":"POST","target":"/realms/acme/oauth/token",
     "route":"/realms/{realm}/oauth/token","status":200,"duration_ms":1.92,
     "realm":"acme","client_id":"jcl_4bX..."}

or text, for a terminal, as uvicorn writes it, with the time and the rest after::

    2026-12-02T05:40:11Z 10.0.3.7:50412 "POST /realms/acme/oauth/token HTTP/1.1" 200 1.92ms
     [6f1c0a9e5b7d2c44] realm=acme client_id=jcl_4bX...

(one line). ``route`` is the route's template, so that lines group by endpoint;
``client_id`` is the client that authenticated, when one did. Every string a
caller chose is written JSON-escaped (JSON) or as sent, percent-encoding kept
(text), so no request can write a line of its own.
"""

from __future__ import annotations

import asyncio
import sys
import time
from json.encoder import encode_basestring_ascii as _quoted
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
        self,
        stream: TextIO | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        *,
        log_format: str = "json",
    ) -> None:
        self._stream = stream
        self._interval = flush_interval
        self._json = log_format == "json"
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
        *,
        request_id: str,
        route: str | None = None,
        realm: str | None = None,
        client_id: str | None = None,
    ) -> None:
        """One request: who, what, the status, how long it took, and its context."""
        who = f"{client[0]}:{client[1]}" if client else "-"
        now = time.time()
        second = int(now)
        if second != self._second:  # formatted once a second, not once a request
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        if self._json:
            line = (
                f'{{"time":"{self._stamp}.{int((now - second) * 1000):03d}Z","logger":"access",'
                f'"request_id":"{request_id}","client":{_quoted(who)},'
                f'"method":{_quoted(method)},"target":{_quoted(target)},'
                f'"route":{_quoted(route) if route else "null"},"status":{status},'
                f'"duration_ms":{seconds * 1000:.2f},'
                f'"realm":{_quoted(realm) if realm else "null"},'
                f'"client_id":{_quoted(client_id) if client_id else "null"}}}'
            )
        else:
            line = (
                f'{self._stamp}Z {who} "{method} {target} HTTP/{http_version}" {status} '
                f"{seconds * 1000:.2f}ms [{request_id}]"
                + (f" realm={_escaped(realm)}" if realm else "")
                + (f" client_id={_escaped(client_id)}" if client_id else "")
            )
        self._lines.append(line)
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


def _escaped(value: str) -> str:
    """``value`` for a text line: control characters, spaces and quotes escaped."""
    if value.isprintable() and " " not in value and '"' not in value:
        return value
    return value.encode("unicode_escape").decode().replace(" ", "\\x20").replace('"', '\\"')


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
