"""How a serving process stops: readiness first, then uvicorn's graceful shutdown.

The first SIGTERM (or SIGINT) does not stop the process at once. For
``JWKS_SHUTDOWN_DELAY`` seconds it drains: everything is still served, but
``/readyz`` answers 503 ("shutting down") and every response closes its
connection, so that load balancers take the replica out and clients reconnect
elsewhere while nothing is refused yet. Then uvicorn's own shutdown runs: it
stops accepting (and, 0.2 s later, closes the connections without a request in
flight), waits up to ``JWKS_SHUTDOWN_TIMEOUT`` seconds for the requests
in flight (and cancels what is left), and the app's lifespan stops the
background loops.

During the drain a second SIGINT (Ctrl+C again) ends it early; a third forces
the exit, as in uvicorn. A repeated SIGTERM is ignored: a signal sent to a whole
process group reaches each ``--workers`` process twice (once directly, once from
the supervisor), and must not cut the drain short.

uvicorn has no option for any of this, so ``serve`` runs :class:`DrainingServer`,
a ``uvicorn.Server``, and in ``--workers`` mode has each worker run one (through
``Process.server``, which uvicorn has since 0.51).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time
from types import FrameType
from typing import Any, Final

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import multiprocess

__all__ = ["DRAIN", "Drain", "DrainingServer", "ServeConfig", "serve"]

log = logging.getLogger(__name__)

#: Added to every response while draining: clients stop reusing the connection.
_CLOSE: Final = (b"connection", b"close")
#: After the listener closes, how long the last connections it accepted have to send
#: their requests before uvicorn closes those that have none in flight.
_SETTLE: Final = 0.2


class Drain:
    """Whether this process is draining (stopping, but still serving)."""

    def __init__(self) -> None:
        #: ``time.monotonic()`` when the drain began; ``None``: not draining.
        self.since: float | None = None

    @property
    def active(self) -> bool:
        """Whether the drain has begun (it never ends: the process stops next)."""
        return self.since is not None

    def begin(self) -> None:
        """Mark the process as draining. Safe in a signal handler: one assignment."""
        if self.since is None:
            self.since = time.monotonic()


#: This process's: signals are per process, and so is every ``--workers`` worker's drain.
DRAIN: Final = Drain()


class ServeConfig(uvicorn.Config):
    """uvicorn's ``Config``, plus how long a stopping process drains (in seconds).

    It is what ``--workers`` mode pickles into each worker, so the worker's server
    finds its delay here.
    """

    def __init__(self, app: str, *, shutdown_delay: float, **options: Any) -> None:
        super().__init__(app, **options)
        self.shutdown_delay = shutdown_delay


class DrainingServer(uvicorn.Server):
    """A ``uvicorn.Server`` that drains for ``config.shutdown_delay`` s before it stops.

    uvicorn calls :meth:`handle_exit` from its signal handlers and :meth:`on_tick`
    every 0.1 s from its main loop: the drain is those two overrides. :meth:`shutdown`
    lets the last connections accepted be read before uvicorn closes the idle ones.
    """

    def __init__(self, config: ServeConfig, drain: Drain = DRAIN) -> None:
        super().__init__(config)
        self._delay = config.shutdown_delay
        self._drain = drain
        #: The signal that began the drain; given to uvicorn when the drain ends.
        self._signal: int | None = None
        self._drain_ends = 0.0
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Begin the drain, end it (a SIGINT during it), or let uvicorn stop."""
        if self._signal is None:
            if not self.started or self.should_exit or self._delay <= 0:
                # Still starting (nothing to drain), or no drain asked for.
                super().handle_exit(sig, frame)
                return
            # Only assignments here: this runs in a signal handler. on_tick logs.
            self._signal = sig
            self._drain_ends = time.monotonic() + self._delay
            self._drain.begin()
        elif self.should_exit:
            super().handle_exit(sig, frame)  # stopping already: a SIGINT forces the exit
        elif sig == signal.SIGINT:
            self._drain_ends = 0.0  # Ctrl+C again: end the drain at the next tick

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's tick; while draining, close connections and end the drain on time."""
        should_exit = await super().on_tick(counter)
        if self._signal is None or should_exit:
            return should_exit
        name = signal.Signals(self._signal).name
        if not self._announced:
            self._announced = True
            log.info(
                "%s: draining for %g s (JWKS_SHUTDOWN_DELAY): /readyz answers 503 and every "
                "response closes its connection; then no new connections, and up to %s s "
                "(JWKS_SHUTDOWN_TIMEOUT) for the requests in flight%s",
                name,
                self._delay,
                self.config.timeout_graceful_shutdown,
                " (Ctrl+C again: no drain)" if self._signal == signal.SIGINT else "",
            )
        # super() rebuilds the default headers once a second: the close goes back in.
        headers = self.server_state.default_headers
        if _CLOSE not in headers:
            self.server_state.default_headers = [*headers, _CLOSE]
        if time.monotonic() < self._drain_ends:
            return False
        log.info("drain over: shutting down")
        super().handle_exit(self._signal, None)  # uvicorn re-raises it once stopped
        return True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown, after a drain: the listener closes first, and requests on
        the connections it accepted last get a moment to arrive.

        uvicorn's closes every connection that has no request in flight yet, so one
        accepted just before the close whose request was still on its way would be
        reset unanswered.
        """
        if self._signal is not None:
            for server in self.servers:
                server.close()
            await asyncio.sleep(_SETTLE)
        await super().shutdown(sockets)


class _Worker(multiprocess.Process):
    """uvicorn's worker process, running a :class:`DrainingServer`."""

    @property
    def server(self) -> uvicorn.Server:
        """The worker's server, made in the worker (as uvicorn's own is)."""
        if self._server is None:
            assert isinstance(self.config, ServeConfig)
            self._server = DrainingServer(self.config)
        return self._server


class _Supervisor(multiprocess.Multiprocess):
    """uvicorn's ``--workers`` supervisor, whose workers drain."""

    def run(self) -> None:
        """Supervise until a signal; every worker made meanwhile is a :class:`_Worker`.

        uvicorn makes workers as ``multiprocess.Process(...)`` in four places (start,
        restart on SIGHUP, replacement of a dead one, SIGTTIN) and takes no class to
        use instead; the name is swapped while this supervisor runs, in this process
        only (the workers are spawned: they import the module afresh).
        """
        original = multiprocess.Process
        multiprocess.Process = _Worker  # type: ignore[misc]
        try:
            super().run()
        finally:
            multiprocess.Process = original  # type: ignore[misc]

    def terminate_all(self) -> None:
        """Signal the workers, and close this process's copy of the listening socket.

        Each worker keeps accepting on its own copy until its drain ends. Kept open
        here, the socket would outlive the last worker's copy: connections would
        then wait in its backlog until this process exits, instead of being refused.
        """
        for sock in self.sockets:
            sock.close()
        super().terminate_all()


def serve(config: ServeConfig) -> None:
    """Run uvicorn as ``uvicorn.run`` does (one process, or ``config.workers`` workers),
    with servers that drain first.

    :raises SystemExit: with uvicorn's start-up failure status (3) when the server
        did not start (a port taken, a failed lifespan start-up).
    """
    server: DrainingServer | None = None
    try:
        if config.workers > 1:
            sock: socket.socket = config.bind_socket()
            _Supervisor(config, sockets=[sock]).run()
        else:
            server = DrainingServer(config)
            server.run()
    except KeyboardInterrupt:
        pass  # Ctrl+C, re-raised by uvicorn once it has stopped
    if server is not None and not server.started:
        sys.exit(STARTUP_FAILURE)
