"""``jwks-service``: serve, make keys, convert PEM to JWK, create admin keys, rekey.

The commands call the same ``crypto``, ``keys`` and ``storage`` code as the app;
there is no logic here beyond argument handling. Settings are read only by the
commands that need them. Every error is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.util
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any, Final

from service import __version__, crypto, logs, metrics
from service.audit import CLI
from service.bootstrap import check_kek, open_runtime
from service.config import Settings
from service.errors import ServiceError
from service.keys import RekeyReport
from service.models import DEFAULT_REALM, Algo, KeyRecord

__all__ = ["main", "uvicorn_options"]

PROG: Final = "jwks-service"
#: The algorithms the commands make or rotate keys for, by their JOSE names (RFC 7518).
_ALGS: Final[dict[str, Algo]] = {"RS256": "rs256", "ES256": "es256", "EdDSA": "eddsa"}
#: Every accepted spelling, folded: the API's names (rs256) and the JOSE names (RS256).
_ALG_NAMES: Final[dict[str, Algo]] = {
    name.casefold(): algo for jose, algo in _ALGS.items() for name in (jose, algo)
}
_ALG_METAVAR: Final = "{" + ",".join(_ALGS.values()) + "}"
#: A rekey reports its progress after every this many realms.
_REKEY_REPORT_EVERY: Final = 100


class CliError(Exception):
    """A failure to report as one line."""


class _Terminated(Exception):
    """SIGTERM arrived: unwind, so that the embedded server is stopped in order."""


def _raise_terminated(_signum: int, _frame: FrameType | None) -> None:
    raise _Terminated


def _algo(value: str) -> Algo:
    """An ``--alg``/``--algo`` value: the API's name or the JOSE name, in any case.

    Users copy names from both the API (``rs256``) and JWT headers (``RS256``); a
    ``choices=`` list would refuse one of the two.
    """
    algo = _ALG_NAMES.get(value.casefold())
    if algo is None:
        accepted = ", ".join(f"{algo} ({jose})" for jose, algo in _ALGS.items())
        raise argparse.ArgumentTypeError(
            f"invalid algorithm {value!r}: choose from {accepted}, in any case"
        )
    return algo


def _serve(args: argparse.Namespace) -> int:
    from service.http.lifecycle import ServeConfig, serve
    from service.storage.embedded import running_server

    settings = Settings.from_env()
    logs.configure(settings.log_format, settings.log_level)
    # uvicorn shuts down gracefully on SIGTERM and then re-raises it for us to
    # handle. Left at its default, that kills this process before the ExitStack
    # below stops the embedded server; as an exception it unwinds through it.
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with contextlib.ExitStack() as stack:
            _share_metrics(stack, args.workers, settings)
            if settings.embedded:
                # Started here, before the workers: each worker's lifespan finds it
                # running and connects; it stops when this process does.
                stack.enter_context(running_server(settings.data_dir, settings.redis_server_bin))
            # The workers check again; checked here first, a KEK that JWKS_KEK lacks
            # (or a store that does not answer within JWKS_STORE_WAIT) is one line and
            # exit 1, not a traceback from each worker's lifespan.
            asyncio.run(check_kek(settings))
            if not settings.bootstrap_admin_key:
                logging.getLogger(PROG).info(
                    "get an admin key with: %s admin-key create   (or: make admin-key)", PROG
                )
            # uvicorn's servers, which drain first (JWKS_SHUTDOWN_DELAY) on a stop.
            serve(
                ServeConfig(
                    "service.app:create_app_from_env",
                    factory=True,
                    shutdown_delay=settings.shutdown_delay,
                    **uvicorn_options(args.host, args.port, args.workers, settings),
                )
            )
    except _Terminated:
        pass  # asked to stop, and stopped cleanly
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _share_metrics(stack: contextlib.ExitStack, workers: int, settings: Settings) -> None:
    """Give the workers one directory for their metric values (prometheus_client's
    multi-process mode), which each must see before it imports the client.

    The operator's PROMETHEUS_MULTIPROC_DIR is emptied of a previous run's files,
    which would add to this run's. Without one, ``--workers`` > 1 share a new
    directory in the temp dir (under a read-only root filesystem it must be a
    writable volume, an ``emptyDir``), removed at exit; one process needs none.
    """
    if settings.metrics_dir is not None:
        metrics.clear_multiprocess_dir(settings.metrics_dir)
    elif workers > 1:
        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="jwks-metrics-"))
        # Spawned, the workers inherit the environment as it is when they start.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        stack.callback(os.environ.pop, "PROMETHEUS_MULTIPROC_DIR", None)


def uvicorn_options(
    host: str, port: int, workers: int, settings: Settings | None = None
) -> dict[str, Any]:
    """How ``serve`` runs uvicorn (``make bench`` runs its reference app the same way).

    uvloop and httptools when installed (uvicorn[standard] brings both; on a
    platform without them, asyncio and h11). uvicorn's own access log is off: the
    app writes a cheaper one (JWKS_ACCESS_LOG). The connection limits are
    ``settings``'s (default: the defaults); h11 enforces only the keep-alive
    timeout and the head size.
    """
    settings = settings or Settings()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "workers": workers,
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        # X-Forwarded-* only from the proxies named in JWKS_TRUSTED_PROXIES: from
        # anyone else they would let a client choose its own address (and so escape
        # its rate limits and lockouts, and forge the logs).
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": list(settings.trusted_proxies),
        "access_log": False,
        # Logging is ours (service.logs, in every worker): uvicorn's lines included.
        "log_config": None,
        "timeout_keep_alive": settings.keep_alive_timeout,
        # After the drain: how long the requests in flight may take to finish.
        "timeout_graceful_shutdown": settings.shutdown_timeout,
    }
    if importlib.util.find_spec("httptools"):
        from service.http.server import protocol_factory

        options["http"] = protocol_factory(settings)
    else:
        options["http"] = "h11"
        options["h11_max_incomplete_event_size"] = settings.max_header_bytes
    return options


def _write_new(path: Path, text: str, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise CliError(f"{path} exists; not overwriting it") from exc
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _keygen(args: argparse.Namespace) -> int:
    pair = crypto.generate_key_pair(args.alg, args.bits)
    out = Path(args.out)
    public = Path(f"{args.out}.pub")
    if public.exists():
        raise CliError(f"{public} exists; not overwriting it")
    _write_new(out, pair.private_pem, 0o600)
    _write_new(public, pair.public_pem, 0o644)
    print(json.dumps(pair.public_jwk, indent=2))
    print(f"wrote {out} (private, mode 0600) and {public} (public)", file=sys.stderr)
    return 0


def _pem2jwk(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {args.file}: {exc.__class__.__name__}") from exc
    try:
        info = crypto.parse_public_key(text, args.alg)
    except crypto.InvalidKey as exc:
        raise CliError(f"{args.file} {exc.detail}") from exc
    kid = args.kid or crypto.thumbprint(info.jwk)
    print(json.dumps(crypto.public_jwk(info.jwk, kid=kid, algo=info.algo), indent=2))
    return 0


def _assertion(args: argparse.Namespace) -> int:
    try:
        pem = Path(args.key).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {args.key}: {exc.__class__.__name__}") from exc
    try:
        token = crypto.sign_client_assertion(
            pem,
            client_id=args.client_id,
            audience=args.audience,
            now=time.time(),
            lifetime=args.lifetime,
            kid=args.kid,
        )
    except crypto.CryptoError as exc:
        raise CliError(f"{args.key} {exc.detail}") from exc
    print(token)
    return 0


def _admin_key_create(args: argparse.Namespace) -> int:
    async def create() -> str:
        async with open_runtime(Settings.from_env()) as runtime:
            if args.realm:
                await runtime.keys.realm(args.realm)
            _key, secret = await runtime.admins.create(args.realm, actor=CLI)
            return secret

    print(asyncio.run(create()))
    scope = f"realm {args.realm!r}" if args.realm else "every realm"
    print(f"admin key for {scope}: shown once, store it now", file=sys.stderr)
    return 0


def _rotate(args: argparse.Namespace) -> int:
    async def rotate() -> KeyRecord:
        async with open_runtime(Settings.from_env()) as runtime:
            return await runtime.keys.rotate(
                args.realm, args.algo, immediate=args.immediate, actor=CLI
            )

    key = asyncio.run(rotate())
    print(json.dumps({"id": key.id, "kid": key.kid, "algo": key.algo, "status": key.status}))
    if args.immediate:
        print(
            "immediate rotation: verifiers with a cached JWKS fail until they refetch",
            file=sys.stderr,
        )
    return 0


def _rekey(_args: argparse.Namespace) -> int:
    def report(progress: RekeyReport) -> None:
        if progress.realms % _REKEY_REPORT_EVERY == 0:
            print(_rekey_line(progress), file=sys.stderr, flush=True)

    async def rekey() -> RekeyReport:
        async with open_runtime(Settings.from_env()) as runtime:
            return await runtime.keys.rekey(progress=report, actor=CLI)

    done = asyncio.run(rekey())
    print(json.dumps(asdict(done)))
    print(_rekey_line(done), file=sys.stderr)
    if done.retired:
        retired = ", ".join(repr(k) for k in done.retired)
        print(f"nothing is sealed under KEK {retired} any more", file=sys.stderr)
    return 0


def _rekey_line(progress: RekeyReport) -> str:
    return (
        f"rekey: {progress.realms} realms, {progress.resealed} secrets sealed again, "
        f"{progress.current} already under the first KEK"
    )


def _kek(_args: argparse.Namespace) -> int:
    print(base64.b64encode(crypto.new_kek()).decode())
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="JWT keys per realm, as a JWKS.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="worker processes")
    serve.set_defaults(run=_serve)

    keygen = commands.add_parser(
        "keygen", help="make a key pair; print the public JWK (kid = RFC 7638 thumbprint)"
    )
    keygen.add_argument(
        "--alg", type=_algo, default="rs256", metavar=_ALG_METAVAR, help="any case; or JOSE names"
    )
    keygen.add_argument(
        "--bits",
        type=int,
        choices=(2048, 3072, 4096),
        default=4096,
        help="RSA key size (default 4096)",
    )
    keygen.add_argument(
        "--out",
        default="private.pem",
        help="private key file (mode 0600); the public PEM goes to OUT.pub",
    )
    keygen.set_defaults(run=_keygen)

    pem2jwk = commands.add_parser("pem2jwk", help="print the JWK of a public key file")
    pem2jwk.add_argument(
        "file", metavar="PUBLIC.pem", help="PEM, OpenSSH or certificate; - for stdin"
    )
    pem2jwk.add_argument("--kid", help="key id (default: RFC 7638 thumbprint)")
    pem2jwk.add_argument(
        "--alg",
        type=_algo,
        metavar=_ALG_METAVAR,
        help="must match the key (default: inferred); any case, or JOSE names",
    )
    pem2jwk.add_argument("--use", choices=("sig",), default="sig")
    pem2jwk.set_defaults(run=_pem2jwk)

    assertion = commands.add_parser(
        "assertion", help="print one private_key_jwt client assertion (RFC 7523)"
    )
    assertion.add_argument("--client-id", required=True, help="iss and sub of the assertion")
    assertion.add_argument("--key", required=True, help="the client's private key PEM")
    assertion.add_argument("--audience", required=True, help="the realm's issuer URL")
    assertion.add_argument("--kid", help="key id (default: RFC 7638 thumbprint, as keygen prints)")
    assertion.add_argument(
        "--lifetime", type=int, default=60, help="seconds until it expires (default 60)"
    )
    assertion.set_defaults(run=_assertion)

    admin_key = commands.add_parser("admin-key", help="manage admin API keys")
    admin_commands = admin_key.add_subparsers(
        dest="admin_command", required=True, metavar="COMMAND"
    )
    create = admin_commands.add_parser("create", help="print a new admin key, once")
    create.add_argument("--realm", help="limit the key to this realm (default: every realm)")
    create.set_defaults(run=_admin_key_create)

    rotate = commands.add_parser(
        "rotate", help="promote the pre-published next key (or publish one to promote later)"
    )
    rotate.add_argument("--realm", default=DEFAULT_REALM)
    rotate.add_argument(
        "--algo", type=_algo, default="rs256", metavar=_ALG_METAVAR, help="any case; or JOSE names"
    )
    rotate.add_argument(
        "--immediate", action="store_true", help="activate a brand-new key now (emergencies)"
    )
    rotate.set_defaults(run=_rotate)

    rekey = commands.add_parser(
        "rekey", help="seal every stored secret again under JWKS_KEK's first KEK (resumable)"
    )
    rekey.set_defaults(run=_rekey)

    kek = commands.add_parser("kek", help="print a new random JWKS_KEK value")
    kek.set_defaults(run=_kek)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except (CliError, ServiceError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status
