"""uvicorn's httptools protocol, with the limits a server facing the network needs.

uvicorn bounds neither the request head nor the time a client may take to send a
request: a connection that sends half a request line, or 2 of 500 body bytes, is
held open for ever, and httptools buffers a header line of any length. Here:

- the head must be complete ``header_timeout`` seconds after the connection opens,
  or after the first byte of a later request on it: else 408, and the connection
  closes (one that sent nothing closes without an answer);
- the body must be complete ``body_timeout`` seconds after the head: else 408;
- a head over ``max_header_bytes`` (request target, header names and values) or
  with more than ``max_headers`` fields is refused with 431;
- a connection serves at most ``max_requests`` requests: the last response says
  ``Connection: close``; between requests it may idle uvicorn's
  ``timeout_keep_alive`` seconds.

This sits on the path of every request, so a request only moves a deadline and
checks two counts (see :class:`LimitedHttpToolsProtocol`).
"""

from __future__ import annotations

import asyncio
import functools
import http
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from service.config import Settings

__all__ = ["ConnectionLimits", "LimitedHttpToolsProtocol", "protocol_factory"]

#: After a refusal, how long what the client still sends is read and dropped, so that
#: closing with unread bytes does not reset the connection before it reads the answer.
LINGER: Final = 2.0


@dataclass(frozen=True)
class ConnectionLimits:
    """What one HTTP/1.1 connection may take: times in seconds, sizes in bytes."""

    header_timeout: float
    body_timeout: float
    max_header_bytes: int
    max_headers: int
    max_requests: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        """The limits ``settings`` configure (``JWKS_HEADER_TIMEOUT`` and the rest)."""
        return cls(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            max_requests=settings.keep_alive_requests,
        )


class _HeadTooLarge(Exception):
    """Raised in a parser callback: the one way to stop httptools there."""


class _Discard:
    """Stands in for the parser after a refusal: what still arrives is dropped."""

    def feed_data(self, data: bytes) -> None:
        """Drop ``data``."""


_DISCARD: Final = _Discard()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with the module's limits.

    One timer per connection enforces every deadline. uvloop's timers are libuv
    handles: arming and cancelling one per request, as uvicorn does for keep-alive,
    costs about as much as all the checks here. So a request only moves
    ``_deadline``, and the timer re-arms itself for it when it fires, at least every
    ``_period`` seconds (the shortest limit), so that no deadline set in between
    passes unseen. With uvicorn's timer gone, a request costs what it did before.

    httptools reports a header only once its line has ended, and counting in
    uvicorn's ``on_header`` would add a call per header. So the bytes of a head are
    counted per read while it is incomplete (refused past the limit), and exactly,
    from what the parser produced, only when a head ends in a read that could take
    it over the limit.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ConnectionLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_timeout = limits.header_timeout
        self._body_timeout = limits.body_timeout
        self._max_header_bytes = limits.max_header_bytes
        self._max_headers = limits.max_headers
        self._requests_left = limits.max_requests
        self._period = min(limits.header_timeout, limits.body_timeout, self.timeout_keep_alive)
        self._timer: asyncio.TimerHandle | None = None
        #: When the current phase must end: the wait for a request, its head or its body.
        self._deadline = 0.0
        #: A request's first byte has arrived and its head has not ended. (Its body
        #: has not ended while uvicorn's ``cycle.more_body`` holds.)
        self._reading_head = False
        #: Bytes of the reads that held the current head, of the one it began in (which
        #: may have begun with the end of a pipelined request), and of the latest.
        self._head_bytes = 0
        self._first_read = 0
        self._read = 0

    # Connection events ---------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the watch: a connection that sends nothing is held as long as a head."""
        super().connection_made(transport)
        self._deadline = self.loop.time() + self._header_timeout
        self._timer = self.loop.call_later(self._period, self._watch)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the watch, then let uvicorn clean up."""
        self._stop_watch()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse ``data`` as uvicorn does; refuse a head that grows past the limit."""
        # uvicorn's data_received, less its keep-alive timer (the watch's now), and
        # with a refusal from a callback kept from being answered 400 as well.
        self._read = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self._stop_watch()  # the WebSocket protocol takes the connection over
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if isinstance(self.parser, _Discard):  # refused in a callback
                return
            message = "Invalid HTTP request received."
            self.logger.warning(message)
            self.send_400_response(message)
            return
        if self._reading_head:
            # Still no end of head, which httptools buffers until its line ends. Every
            # read since the first is all head: refuse on those (so a head is held to
            # the limit plus one read), as the first may hold an earlier request's end.
            self._head_bytes += self._read
            if self._head_bytes - self._first_read > self._max_header_bytes:
                self._refuse(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive deadline moved instead of a timer armed."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            if cycle is self.cycle and cycle.more_body and not self._reading_head:
                # Its body was not read while it waited: its time starts now.
                self._deadline = self.loop.time() + self._body_timeout
        elif not (self._reading_head or self.cycle.more_body):
            self._deadline = self.loop.time() + self.timeout_keep_alive

    # Parser callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        """Start the head's deadline and count."""
        # Not super(): on Python 3.11 it builds an object per call, on every request.
        HttpToolsProtocol.on_message_begin(self)
        self._reading_head = True
        self._deadline = self.loop.time() + self._header_timeout
        self._head_bytes = 0
        self._first_read = self._read

    def on_headers_complete(self) -> None:
        """Check the head's size; start the body's deadline; count the request."""
        # The reads that held the head bound its size; only past the limit is it
        # measured, from what the parser produced.
        if (
            self._head_bytes + self._read > self._max_header_bytes
            or len(self.headers) > self._max_headers
        ) and self._head_too_large():
            self._refuse(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
            raise _HeadTooLarge
        self._reading_head = False
        self._deadline = self.loop.time() + self._body_timeout
        HttpToolsProtocol.on_headers_complete(self)
        self._requests_left -= 1
        if self._requests_left == 0 and self.cycle is not None:  # None: an upgrade
            self.cycle.keep_alive = False  # uvicorn then answers Connection: close

    def _head_too_large(self) -> bool:
        size = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
        return size > self._max_header_bytes or len(self.headers) > self._max_headers

    # The watch and refusals ------------------------------------------------------

    def _stop_watch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _watch(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answered = cycle is None or cycle.response_complete
        body_pending = not self._reading_head and cycle is not None and cycle.more_body
        # The app is answering, or a pipelined request waits for it (uvicorn stops
        # reading meanwhile): the deadline waits too, and no answer may cut in.
        busy = bool(self.pipeline) or not (answered or body_pending)
        remaining = self._deadline - self.loop.time()
        if busy or remaining > 0:
            delay = remaining if 0 < remaining < self._period else self._period
            self._timer = self.loop.call_later(delay, self._watch)
        elif self._reading_head or (body_pending and not cycle.response_started):
            self._refuse(http.HTTPStatus.REQUEST_TIMEOUT)
        else:
            # Idle; or the app answered without reading the whole body.
            self.transport.close()

    def _refuse(self, status: http.HTTPStatus) -> None:
        """Answer ``status`` and close, after reading for a while what still arrives.

        RFC 9110 §15.5.9: a server that sends 408 "SHOULD send the 'close' connection
        option"; so do we after 431, the head being unread.
        """
        self._stop_watch()
        self.parser = _DISCARD  # type: ignore[assignment]
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The app sees the client go, as uvicorn tells it on a lost connection,
            # and can no longer answer.
            cycle.disconnected = True
            cycle.message_event.set()
            if self._reading_head or cycle.response_started:
                # An earlier request's answer is due first: ours cannot go before it.
                self.transport.close()
                return
        self._reading_head = False
        body = status.phrase.encode()
        head = [b"HTTP/1.1 %d %s\r\n" % (status.value, body)]
        head += [b"%s: %s\r\n" % field for field in self.server_state.default_headers]
        head.append(b"content-type: text/plain; charset=utf-8\r\n")
        head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._timer = self.loop.call_later(LINGER, self.transport.close)
        else:
            self.transport.close()


def protocol_factory(settings: Settings) -> Callable[..., asyncio.Protocol]:
    """The ``http`` option for uvicorn: :class:`LimitedHttpToolsProtocol` with the limits
    ``settings`` configure. A partial of a module-level class, so it pickles into the
    ``--workers`` processes.
    """
    return functools.partial(
        LimitedHttpToolsProtocol, limits=ConnectionLimits.from_settings(settings)
    )
