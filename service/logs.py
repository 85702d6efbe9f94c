"""Log lines: JSON for collectors or text for a terminal, and the request id in each.

Every line a request causes (its access log line, an ``invalid_client`` reason,
an audit event, a traceback) carries that request's id: the HTTP layer sets
:data:`REQUEST_ID` as a request comes in, and the filter installed here copies it
onto every record logged in that request's context. Lines logged outside any
request (start-up, background loops) have none.

JSON lines (``JWKS_LOG_FORMAT=json``, the default) look like::

    {"time": "2026-12-02T05:40:11.031Z", "level": "INFO", "logger": "service.audit",
     "message": "key.rotated realm=acme actor=adm_3f... subject=jky_...",
     "request_id": "6f1c0a9e5b7d2c44"}

(one line each; the access log writes its own lines, in the same format, see
:mod:`service.http.access_log`).
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Any, Final, TextIO

from pythonjsonlogger.json import JsonFormatter

__all__ = ["REQUEST_ID", "configure", "timestamp"]

#: The id of the request being served in this context (``None``: none is).
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

_TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s%(request_suffix)s"


def timestamp(now: float) -> str:
    """RFC 3339 UTC with milliseconds, as every JSON line writes its time."""
    seconds = int(now)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + (
        f".{int((now - seconds) * 1000):03d}Z"
    )


class _RequestIdFilter(logging.Filter):
    """Copies the request id of the current context onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        record.request_id = request_id
        record.request_suffix = f" [{request_id}]" if request_id else ""
        return True


class _Json(JsonFormatter):
    """python-json-logger's formatter with our field names and RFC 3339 times."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = timestamp(record.created)
        super().add_fields(log_data, record, message_dict)
        log_data.pop("request_suffix", None)
        log_data.pop("color_message", None)  # uvicorn's, with terminal escapes
        if log_data.get("request_id") is None:
            log_data.pop("request_id", None)


def configure(log_format: str = "json", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every logger's records (uvicorn's included) to ``stream`` (default: stderr)
    in ``log_format``, at ``level`` and above; calling it again replaces the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(
            _Json(
                ["levelname", "name", "message"],
                rename_fields={"levelname": "level", "name": "logger"},
            )
        )
    else:
        formatter = logging.Formatter(_TEXT_FORMAT, "%Y-%m-%dT%H:%M:%SZ")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's loggers write through the root handler, in the same format; its
    # access log is replaced by the service's own (service.http.access_log).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = name != "uvicorn.access"
