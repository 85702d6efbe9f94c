"""Settings: read from the environment once, parsed and validated, then frozen.

Nothing else reads ``os.environ``. A bad value raises ``ConfigError`` naming the
variable, and the CLI prints it as one line and exits.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import ipaddress
import os
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from service.errors import ServiceError
from service.models import DEFAULT_KEK_ID, DEFAULT_REALM, KEK_ID

__all__ = [
    "MULTI_HOST_SCHEMES",
    "ConfigError",
    "MultiHostUrl",
    "Settings",
    "TlsOptions",
    "parse_multi_host_url",
    "redacted_url",
    "single_server_tls",
]

T = TypeVar("T")
#: JWKS_EMBEDDED_STORE: whether the embedded store may start when JWKS_REDIS_URL is unset.
EmbeddedStore = Literal["allow", "refuse"]

REDIS_SCHEMES: Final = ("redis", "rediss", "unix")
CLUSTER_SCHEME: Final = "redis+cluster"
SENTINEL_SCHEME: Final = "redis+sentinel"
#: The same over TLS, to every node (for Sentinel: to the Sentinels and to the master).
CLUSTER_TLS_SCHEME: Final = "rediss+cluster"
SENTINEL_TLS_SCHEME: Final = "rediss+sentinel"
#: Port of a host given without one: the server's, or Sentinel's.
_DEFAULT_PORTS: Final = {
    CLUSTER_SCHEME: 6379,
    CLUSTER_TLS_SCHEME: 6379,
    SENTINEL_SCHEME: 26379,
    SENTINEL_TLS_SCHEME: 26379,
}
MULTI_HOST_SCHEMES: Final = tuple(_DEFAULT_PORTS)
RSA_BITS: Final = (2048, 3072, 4096)
#: Admin keys are at least 32 random bytes; a bootstrap key shorter than this is a typo.
MIN_ADMIN_KEY_LENGTH: Final = 32
#: A metrics token shorter than this is guessable (make one with ``openssl rand -hex 32``).
MIN_METRICS_TOKEN_LENGTH: Final = 16
#: Slack on top of token lifetime + JWKS max-age for clocks and in-flight requests.
GRACE_MARGIN: Final = 60
#: Slack on top of the JWKS max-age before a pre-published key may sign.
PUBLISH_MARGIN: Final = 5
#: A request head limit below this refuses ordinary requests (a bearer token alone is ~1 KiB).
MIN_HEADER_BYTES: Final = 1024
LOG_FORMATS: Final = ("json", "text")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Audit events kept per stream unless JWKS_AUDIT_MAX_EVENTS says otherwise.
DEFAULT_AUDIT_MAX_EVENTS: Final = 10_000


class ConfigError(ServiceError):
    """A configuration variable has a value the service cannot use."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    """Everything configurable, parsed once at start."""

    #: The URL may hold the store's and the Sentinels' passwords: not in the repr.
    redis_url: str | None = field(default=None, repr=False)
    data_dir: Path = Path(".jwks-data")
    issuer: str = "http://127.0.0.1:8000"
    bootstrap_admin_key: str | None = None
    #: The KEK new secrets are sealed under (``None``: the one in ``<data_dir>/kek``,
    #: which only the embedded store may use), and its id; ``previous_keks`` only open
    #: what older KEKs sealed (a rotation).
    #: Key bytes stay out of the repr, which a traceback or a debug log may show.
    kek: bytes | None = field(default=None, repr=False)
    kek_id: str = DEFAULT_KEK_ID
    previous_keks: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)
    jwks_max_age: int = 300
    key_grace: int = 86_400
    rsa_bits: int = 2048
    redis_server_bin: str | None = None
    #: ``refuse``: a start without JWKS_REDIS_URL is an error, not the embedded store
    #: (the container image: a store inside a container is lost with it).
    embedded_store: EmbeddedStore = "allow"
    token_ttl: int = 600
    max_assertion_lifetime: int = 3600
    strict_assertion_audience: bool = False
    rotation_interval: int = 604_800
    #: Key rings kept prepared in memory per process (least recently used go first).
    cache_realms: int = 10_000
    #: Clients kept in memory per process (least recently used go first).
    cache_clients: int = 10_000
    #: One line per request on stdout, written in batches.
    access_log: bool = True
    #: ``json`` (one object per line, for log collectors) or ``text`` (for a terminal).
    log_format: str = "json"
    #: The level of the service's own log lines (the access log has none).
    log_level: str = "INFO"
    #: OpenTelemetry tracing (the ``otel`` extra), configured by the ``OTEL_*`` variables.
    otel: bool = False
    #: Audit events kept per realm (and in the global stream); the oldest go first.
    audit_max_events: int = DEFAULT_AUDIT_MAX_EVENTS
    #: RSA keys of at least this many bits sign in a thread pool, off the event loop.
    sign_thread_min_bits: int = 2048
    #: Seconds to send a whole request head, from connecting or from a later request's
    #: first byte (Node's headersTimeout, Go's ReadHeaderTimeout; those are 60 s and unset).
    header_timeout: int = 10
    #: Seconds to send a whole body, from the end of its head. Bodies are at most 64 KiB.
    body_timeout: int = 10
    #: Seconds an idle connection is kept open between requests (uvicorn's default).
    keep_alive_timeout: int = 5
    #: Requests one connection may make; the last response closes it (nginx: 1000).
    keep_alive_requests: int = 1000
    #: Bytes of request target, header names and values in one head (Node: 16 KiB).
    max_header_bytes: int = 16_384
    #: Header fields in one head (Apache's LimitRequestFields).
    max_headers: int = 100
    #: Seconds a stopping process still serves, with /readyz answering 503, before it
    #: stops accepting: the time load balancers take to drop it.
    shutdown_delay: int = 5
    #: Seconds it then waits for the requests in flight before cancelling them
    #: (uvicorn's timeout_graceful_shutdown); above JWKS_BODY_TIMEOUT, so a slow upload
    #: ends by itself.
    shutdown_timeout: int = 15
    #: Seconds ``serve`` retries its first contact with the store (0: one try).
    store_wait: int = 30
    #: Addresses or networks of the proxies whose X-Forwarded-For / X-Forwarded-Proto
    #: are believed (the client address of rate limits, lockouts and logs). None: the
    #: TCP peer is the client, whatever a header says.
    trusted_proxies: tuple[str, ...] = ()
    #: Requests per minute (0: no limit) per client and per source address at the token
    #: endpoint, per client at introspection, per admin key at the admin API. Generous:
    #: ``make bench`` drives ~10,000/s from one client and one address.
    rate_token_per_client: int = 1_000_000
    rate_token_per_address: int = 1_000_000
    rate_introspect_per_client: int = 1_000_000
    rate_admin_per_key: int = 1_000_000
    #: Failed authentications that lock a client id out (0: never), and those that lock
    #: out a source address, whoever it claimed to be (clients, admin keys).
    auth_failures: int = 10
    auth_failures_per_address: int = 100
    #: Seconds in which those failures count, and that the lockout lasts.
    auth_lockout: int = 60
    #: The bearer token ``GET /metrics`` requires (``None``: it answers anyone).
    metrics_token: str | None = field(default=None, repr=False)
    #: Realms that get a ``realm`` label value of their own in each process's metrics
    #: (the others are counted as ``_other``; 0: every realm): each is a series per
    #: process, auth method and profile.
    metrics_realms: int = 100
    #: PROMETHEUS_MULTIPROC_DIR, when the operator sets it (``serve`` empties it first).
    metrics_dir: Path | None = None

    def issuer_of(self, realm: str) -> str:
        """The issuer identifier of ``realm``: the base URL, or ``<base>/realms/<realm>``."""
        return self.issuer if realm == DEFAULT_REALM else f"{self.issuer}/realms/{realm}"

    @property
    def publish_lead(self) -> int:
        """How long a next key is published before it may sign: max-age plus a margin."""
        return self.jwks_max_age + PUBLISH_MARGIN

    @property
    def embedded(self) -> bool:
        """Whether the service runs its own store (no ``JWKS_REDIS_URL``)."""
        return self.redis_url is None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse the ``JWKS_*`` variables.

        :raises ConfigError: naming the first variable with a bad value.
        """
        env = os.environ if environ is None else environ

        def get(name: str, parse: Callable[[str, str], T], default: T) -> T:
            raw = env.get(name, "").strip()
            return parse(name, raw) if raw else default

        def secret(name: str, parse: Callable[[str, str], T], default: T) -> T:
            """``name``, or the file that ``<name>_FILE`` names (a mounted secret)."""
            source, raw = _secret_text(env, name)
            return parse(source, raw) if raw else default

        keks: tuple[tuple[str, bytes], ...] = secret("JWKS_KEK", _keks, ())
        settings = cls(
            redis_url=secret("JWKS_REDIS_URL", _redis_url, None),
            data_dir=get("JWKS_DATA_DIR", lambda _n, v: Path(v), cls.data_dir),
            issuer=get("JWKS_ISSUER", _issuer, cls.issuer),
            bootstrap_admin_key=secret("JWKS_BOOTSTRAP_ADMIN_KEY", _admin_key, None),
            kek=keks[0][1] if keks else None,
            kek_id=keks[0][0] if keks else DEFAULT_KEK_ID,
            previous_keks=keks[1:],
            jwks_max_age=get("JWKS_JWKS_MAX_AGE", _seconds, cls.jwks_max_age),
            key_grace=get("JWKS_KEY_GRACE", _positive_seconds, cls.key_grace),
            rsa_bits=get("JWKS_RSA_BITS", _rsa_bits, cls.rsa_bits),
            redis_server_bin=get("JWKS_REDIS_SERVER_BIN", lambda _n, v: v, None),
            embedded_store=get("JWKS_EMBEDDED_STORE", _embedded_store, cls.embedded_store),
            token_ttl=get("JWKS_TOKEN_TTL", _positive_seconds, cls.token_ttl),
            max_assertion_lifetime=get(
                "JWKS_MAX_ASSERTION_LIFETIME", _positive_seconds, cls.max_assertion_lifetime
            ),
            strict_assertion_audience=get(
                "JWKS_STRICT_ASSERTION_AUDIENCE", _boolean, cls.strict_assertion_audience
            ),
            rotation_interval=get("JWKS_ROTATION_INTERVAL", _seconds, cls.rotation_interval),
            cache_realms=get("JWKS_CACHE_REALMS", _positive, cls.cache_realms),
            cache_clients=get("JWKS_CACHE_CLIENTS", _positive, cls.cache_clients),
            access_log=get("JWKS_ACCESS_LOG", _boolean, cls.access_log),
            log_format=get("JWKS_LOG_FORMAT", _one_of(LOG_FORMATS), cls.log_format),
            log_level=get("JWKS_LOG_LEVEL", _log_level, cls.log_level),
            otel=get("JWKS_OTEL", _boolean, cls.otel),
            audit_max_events=get("JWKS_AUDIT_MAX_EVENTS", _positive, cls.audit_max_events),
            sign_thread_min_bits=get(
                "JWKS_SIGN_THREAD_MIN_BITS", _positive, cls.sign_thread_min_bits
            ),
            header_timeout=get("JWKS_HEADER_TIMEOUT", _positive_seconds, cls.header_timeout),
            body_timeout=get("JWKS_BODY_TIMEOUT", _positive_seconds, cls.body_timeout),
            keep_alive_timeout=get(
                "JWKS_KEEP_ALIVE_TIMEOUT", _positive_seconds, cls.keep_alive_timeout
            ),
            keep_alive_requests=get("JWKS_KEEP_ALIVE_REQUESTS", _positive, cls.keep_alive_requests),
            max_header_bytes=get("JWKS_MAX_HEADER_BYTES", _header_bytes, cls.max_header_bytes),
            max_headers=get("JWKS_MAX_HEADERS", _positive, cls.max_headers),
            shutdown_delay=get("JWKS_SHUTDOWN_DELAY", _seconds, cls.shutdown_delay),
            shutdown_timeout=get("JWKS_SHUTDOWN_TIMEOUT", _seconds, cls.shutdown_timeout),
            store_wait=get("JWKS_STORE_WAIT", _seconds, cls.store_wait),
            trusted_proxies=get("JWKS_TRUSTED_PROXIES", _networks, cls.trusted_proxies),
            rate_token_per_client=get(
                "JWKS_RATE_TOKEN_PER_CLIENT", _limit, cls.rate_token_per_client
            ),
            rate_token_per_address=get(
                "JWKS_RATE_TOKEN_PER_ADDRESS", _limit, cls.rate_token_per_address
            ),
            rate_introspect_per_client=get(
                "JWKS_RATE_INTROSPECT_PER_CLIENT", _limit, cls.rate_introspect_per_client
            ),
            rate_admin_per_key=get("JWKS_RATE_ADMIN_PER_KEY", _limit, cls.rate_admin_per_key),
            auth_failures=get("JWKS_AUTH_FAILURES", _limit, cls.auth_failures),
            auth_failures_per_address=get(
                "JWKS_AUTH_FAILURES_PER_ADDRESS", _limit, cls.auth_failures_per_address
            ),
            auth_lockout=get("JWKS_AUTH_LOCKOUT", _positive_seconds, cls.auth_lockout),
            metrics_token=secret("JWKS_METRICS_TOKEN", _metrics_token, None),
            metrics_realms=get("JWKS_METRICS_REALMS", _limit, cls.metrics_realms),
            metrics_dir=get("PROMETHEUS_MULTIPROC_DIR", _directory, None),
        )
        if settings.embedded and settings.embedded_store == "refuse":
            raise ConfigError(
                "JWKS_REDIS_URL",
                "is not set, and JWKS_EMBEDDED_STORE=refuse (as in the container image): "
                "point it (or JWKS_REDIS_URL_FILE) at a Redis or Valkey server (redis://, "
                "rediss://, unix://, redis[s]+sentinel://, redis[s]+cluster://); to try "
                "the embedded store instead, "
                f"set JWKS_EMBEDDED_STORE=allow and mount a volume at {settings.data_dir}",
            )
        if settings.otel and not _installed("opentelemetry.instrumentation.asgi"):
            raise ConfigError(
                "JWKS_OTEL", "is on but the otel extra is missing: pip install 'jwks-service[otel]'"
            )
        if not settings.embedded and settings.kek is None:
            # The KEK in the data dir would live on this machine's (a container's)
            # filesystem only: lost with it, and every secret in the store with it;
            # and each replica would make its own.
            raise ConfigError(
                "JWKS_KEK",
                "must be set (or JWKS_KEK_FILE) with JWKS_REDIS_URL: make one with "
                "`jwks-service kek`, keep it safe, and give the same to every replica",
            )
        minimum = settings.token_ttl + settings.jwks_max_age + GRACE_MARGIN
        if settings.key_grace < minimum:
            # A retired key must verify every token it signed (token lifetime) for
            # verifiers holding a JWKS cached before the change (max-age).
            raise ConfigError(
                "JWKS_KEY_GRACE",
                f"must be at least {minimum} s (JWKS_TOKEN_TTL + JWKS_JWKS_MAX_AGE + "
                f"{GRACE_MARGIN} s), so every token a retired key signed keeps verifying",
            )
        if 0 < settings.rotation_interval <= settings.publish_lead:
            raise ConfigError(
                "JWKS_ROTATION_INTERVAL",
                f"must be 0 (off) or more than {settings.publish_lead} s "
                "(JWKS_JWKS_MAX_AGE + 5 s: a next key must be published that long first)",
            )
        return settings


def _secret_text(env: Mapping[str, str], name: str) -> tuple[str, str]:
    """The value of ``name`` or the text of the file ``<name>_FILE`` names, stripped,
    with the variable to name in errors about it.

    Messages give the file's path and why it cannot be read, never its content.
    """
    file_variable = f"{name}_FILE"
    raw = env.get(name, "").strip()
    path = env.get(file_variable, "").strip()
    if not path:
        return name, raw
    if raw:
        raise ConfigError(file_variable, f"cannot be set together with {name}: set one")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(file_variable, f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(file_variable, f"{path} is not UTF-8 text") from None
    return file_variable, text.strip()


def _is_number(raw: str) -> bool:
    # str.isdigit() alone also accepts "²" (int() then raises) and "٣" (int() reads 3).
    return raw.isascii() and raw.isdigit()


def _seconds(name: str, raw: str) -> int:
    if not _is_number(raw):
        raise ConfigError(name, f"must be a whole number of seconds, got {raw!r}")
    return int(raw)


def _positive_seconds(name: str, raw: str) -> int:
    value = _seconds(name, raw)
    if value < 1:
        raise ConfigError(name, "must be at least 1 second")
    return value


def _positive(name: str, raw: str) -> int:
    if not _is_number(raw) or int(raw) < 1:
        raise ConfigError(name, f"must be a whole number of at least 1, got {raw!r}")
    return int(raw)


def _limit(name: str, raw: str) -> int:
    if not _is_number(raw):
        raise ConfigError(name, f"must be a whole number (0: no limit), got {raw!r}")
    return int(raw)


def _header_bytes(name: str, raw: str) -> int:
    if not _is_number(raw) or int(raw) < MIN_HEADER_BYTES:
        raise ConfigError(
            name, f"must be a whole number of at least {MIN_HEADER_BYTES}, got {raw!r}"
        )
    return int(raw)


def _boolean(name: str, raw: str) -> bool:
    value = raw.lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(name, f"must be true or false, got {raw!r}")
    return value in ("true", "1", "yes")


def _networks(name: str, raw: str) -> tuple[str, ...]:
    networks = tuple(part.strip() for part in raw.split(",") if part.strip())
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ConfigError(name, f"must be addresses or CIDR networks, got {network!r}") from exc
    return networks


def _embedded_store(name: str, raw: str) -> EmbeddedStore:
    value = raw.lower()
    if value == "allow":
        return "allow"
    if value == "refuse":
        return "refuse"
    raise ConfigError(name, f"must be allow or refuse, got {raw!r}")


def _rsa_bits(name: str, raw: str) -> int:
    if not _is_number(raw) or int(raw) not in RSA_BITS:
        raise ConfigError(name, f"must be one of 2048, 3072, 4096, got {raw!r}")
    return int(raw)


#: Query parameters of store URLs: TLS settings (the ``rediss`` schemes), the
#: Sentinels' own credentials (the Sentinel schemes), a single server's database.
_TLS_PARAMETERS: Final = (
    "ssl_ca_certs",
    "ssl_cert_reqs",
    "ssl_check_hostname",
    "ssl_certfile",
    "ssl_keyfile",
)
_SENTINEL_PARAMETERS: Final = ("sentinel_username", "sentinel_password")
_TLS_SCHEMES: Final = ("rediss", CLUSTER_TLS_SCHEME, SENTINEL_TLS_SCHEME)
_SENTINEL_SCHEMES: Final = (SENTINEL_SCHEME, SENTINEL_TLS_SCHEME)
#: What a parameter's name looks like. Anything else is more likely a piece of a
#: password with a bare ``&`` in it, which no message may quote.
_PARAMETER_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,39}")


@dataclass(frozen=True)
class TlsOptions:
    """TLS to a store (the ``rediss`` schemes), from the URL's ``ssl_*`` parameters."""

    #: ``ssl_ca_certs``: the PEM bundle the server's certificate must chain to
    #: (``None``: the system's trust store).
    ca_certs: str | None = None
    #: ``ssl_cert_reqs=required`` (the default) or ``none``: whether the server's
    #: certificate is checked at all.
    verify: bool = True
    #: ``ssl_check_hostname``: whether the certificate must name the host connected to.
    check_hostname: bool = True
    #: ``ssl_certfile`` / ``ssl_keyfile``: a client certificate for mutual TLS (the
    #: certificate file may hold the key too).
    certfile: str | None = None
    keyfile: str | None = None


@dataclass(frozen=True)
class MultiHostUrl:
    """``redis+cluster://[user:pass@]host:port,...`` or ``redis+sentinel://.../<master>``
    (``rediss+`` for TLS), with an optional query."""

    scheme: str
    hosts: tuple[tuple[str, int], ...]
    #: The Sentinel master name; ``None`` for a cluster.
    service_name: str | None = None
    username: str | None = None
    #: Passwords stay out of the repr, which a traceback or a debug log may show.
    password: str | None = field(default=None, repr=False)
    #: TLS to every node (the ``rediss+`` schemes); ``None``: plaintext.
    tls: TlsOptions | None = None
    #: The Sentinels' own credentials (the userinfo is the master's).
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

    @property
    def cluster(self) -> bool:
        """Whether this names Cluster seed nodes (else Sentinels)."""
        return self.scheme in (CLUSTER_SCHEME, CLUSTER_TLS_SCHEME)


def parse_multi_host_url(raw: str) -> MultiHostUrl:
    """Parse a cluster or sentinel URL.

    :raises ValueError: with a message that never quotes the URL or a query value
        (either may hold a password).
    """
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme not in _DEFAULT_PORTS:
        raise ValueError(f"must start with {', '.join(f'{s}://' for s in MULTI_HOST_SCHEMES)}")
    if "#" in rest:
        raise ValueError("takes no fragment")
    rest, _, query = rest.partition("?")
    params = _query(query, scheme)
    netloc, _, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
        if password is None and username is not None:
            # "secret@host" is the common shorthand for a password alone.
            username, password = None, username
    hosts = tuple(_host_port(h, _DEFAULT_PORTS[scheme]) for h in hostlist.split(","))
    service = unquote(path.strip("/"))
    sentinel = scheme in _SENTINEL_SCHEMES
    if sentinel and not service:
        raise ValueError(f"needs the master name as its path: {scheme}://host:port/<name>")
    if not sentinel and service:
        raise ValueError("takes no path (Cluster has no databases)")
    if "sentinel_username" in params and "sentinel_password" not in params:
        raise ValueError("has sentinel_username without sentinel_password")
    return MultiHostUrl(
        scheme,
        hosts,
        service or None,
        username,
        password,
        tls=_tls_options(params) if scheme in _TLS_SCHEMES else None,
        sentinel_username=params.get("sentinel_username"),
        sentinel_password=params.get("sentinel_password"),
    )


def redacted_url(raw: str) -> str:
    """Where a ``JWKS_REDIS_URL`` points, for messages: its scheme, hosts and ports (or
    socket path, or Sentinel master), without anything that may be secret (user,
    password, query)."""
    if raw.startswith(tuple(f"{scheme}:" for scheme in MULTI_HOST_SCHEMES)):
        try:
            parsed = parse_multi_host_url(raw)
        except ValueError:
            return f"{raw.partition(':')[0]}://..."
        hosts = ",".join(_netloc(host, port) for host, port in parsed.hosts)
        master = f"/{parsed.service_name}" if parsed.service_name else ""
        return f"{parsed.scheme}://{hosts}{master}"
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        return f"{raw.partition(':')[0]}://..."
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    return f"{parts.scheme}://{_netloc(parts.hostname or '', port)}"


def _netloc(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def single_server_tls(raw: str) -> TlsOptions | None:
    """The TLS options of a ``rediss://`` URL (``None`` for ``redis://`` and ``unix://``),
    after checking the URL's query.

    :raises ValueError: with a message that never quotes the URL or a query value.
    """
    parts = urlsplit(raw)
    params = _query(parts.query, parts.scheme)
    if "db" in params and not _is_number(params["db"]):
        raise ValueError("has a db parameter that is not a whole number")
    return _tls_options(params) if parts.scheme in _TLS_SCHEMES else None


def _query(query: str, scheme: str) -> dict[str, str]:
    """The parameters of ``query`` (percent- and ``+``-decoded, as redis-py's
    ``from_url`` reads them): each known to ``scheme``, given once, with a value.

    Messages name a parameter, never its value.
    """
    allowed = (
        (_TLS_PARAMETERS if scheme in _TLS_SCHEMES else ())
        + (_SENTINEL_PARAMETERS if scheme in _SENTINEL_SCHEMES else ())
        + (() if scheme in _DEFAULT_PORTS else ("db",))
    )
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if not _PARAMETER_NAME.fullmatch(name):
            raise ValueError(
                "has a query parameter with a malformed name (percent-encode &, =, + "
                "and # inside values)"
            )
        if name not in allowed:
            raise ValueError(_unknown_parameter(name, scheme, allowed))
        if name in params:
            raise ValueError(f"has the query parameter {name} twice")
        if not value:
            raise ValueError(f"has an empty query parameter {name}")
        params[name] = value
    return params


def _unknown_parameter(name: str, scheme: str, allowed: tuple[str, ...]) -> str:
    if name in _TLS_PARAMETERS or name == "ssl":
        if scheme in _TLS_SCHEMES:
            return "has ssl: the rediss scheme already means TLS"
        tls = {
            "redis": "rediss://",
            CLUSTER_SCHEME: f"{CLUSTER_TLS_SCHEME}://",
            SENTINEL_SCHEME: f"{SENTINEL_TLS_SCHEME}://",
        }.get(scheme)
        return f"has {name}, a TLS parameter: TLS needs {tls}" if tls else "has no TLS"
    if name in _SENTINEL_PARAMETERS:
        return f"has {name}, which only Sentinel URLs take"
    known = f" (it takes {', '.join(allowed)})" if allowed else " (it takes none)"
    return f"has an unknown query parameter {name}{known}"


def _tls_options(params: Mapping[str, str]) -> TlsOptions:
    cert_reqs = params.get("ssl_cert_reqs", "required").lower()
    if cert_reqs not in ("required", "none"):
        raise ValueError("has an ssl_cert_reqs that is neither required nor none")
    check_hostname = params.get("ssl_check_hostname", "true").lower()
    if check_hostname not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError("has an ssl_check_hostname that is neither true nor false")
    tls = TlsOptions(
        ca_certs=params.get("ssl_ca_certs"),
        verify=cert_reqs == "required",
        check_hostname=check_hostname in ("true", "1", "yes"),
        certfile=params.get("ssl_certfile"),
        keyfile=params.get("ssl_keyfile"),
    )
    if tls.keyfile and not tls.certfile:
        raise ValueError("has ssl_keyfile without ssl_certfile")
    _load_tls_files(tls)
    return tls


def _load_tls_files(tls: TlsOptions) -> None:
    """Load the files ``tls`` names once, so that a missing or bad one stops the
    start with its parameter's name, not the first connection with an OpenSSL error."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.ca_certs:
        try:
            context.load_verify_locations(cafile=tls.ca_certs)
        except ssl.SSLError:
            raise ValueError("has an ssl_ca_certs file that holds no PEM certificate") from None
        except OSError as exc:
            raise ValueError(f"has an ssl_ca_certs file it cannot read: {exc.strerror}") from None
    if tls.certfile:
        try:
            # An encrypted key would make OpenSSL prompt on the terminal: refuse it.
            context.load_cert_chain(tls.certfile, tls.keyfile, password=lambda: b"")
        except ssl.SSLError:
            raise ValueError(
                "has an ssl_certfile / ssl_keyfile that are not a PEM certificate and its "
                "unencrypted private key"
            ) from None
        except OSError as exc:
            raise ValueError(
                f"has an ssl_certfile or ssl_keyfile it cannot read: {exc.strerror}"
            ) from None


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (a parent may be)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _one_of(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ConfigError(name, f"must be one of {', '.join(choices)}")
        return value

    return parse


def _log_level(name: str, raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(name, f"must be one of {', '.join(LOG_LEVELS)}")
    return level


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [ipv6]:port
        host, _, tail = item[1:].partition("]")
        port_text = tail.removeprefix(":")
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise ValueError("has an empty host in its host list")
    if not port_text:
        return host, default_port
    if not _is_number(port_text) or not 0 < int(port_text) < 65536:
        raise ValueError("has a bad port in its host list")
    return host, int(port_text)


def _redis_url(name: str, raw: str) -> str:
    # The URL may hold passwords: no message quotes it.
    if raw.startswith(tuple(f"{scheme}:" for scheme in MULTI_HOST_SCHEMES)):
        try:
            parse_multi_host_url(raw)
        except ValueError as exc:
            raise ConfigError(name, str(exc)) from None
        return raw
    try:
        parts = urlsplit(raw)
        hostname, _port = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigError(name, "is not a valid URL (bad host or port)") from exc
    if parts.scheme not in REDIS_SCHEMES:
        schemes = ", ".join(f"{scheme}://" for scheme in (*REDIS_SCHEMES, *MULTI_HOST_SCHEMES))
        raise ConfigError(name, f"must start with one of {schemes}")
    if parts.scheme != "unix" and not hostname:
        raise ConfigError(name, "has no host")
    if parts.scheme == "unix" and not parts.path:
        raise ConfigError(name, "has no socket path")
    try:
        single_server_tls(raw)
    except ValueError as exc:
        raise ConfigError(name, str(exc)) from None
    return raw


def _issuer(name: str, raw: str) -> str:
    try:
        parts = urlsplit(raw)
        _port = parts.port
    except ValueError as exc:
        raise ConfigError(name, f"is not a valid URL, got {raw!r}") from exc
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(name, f"must be an http(s) base URL, got {raw!r}")
    if parts.query or parts.fragment:
        raise ConfigError(name, "must not have a query or fragment (RFC 8414 §2)")
    return raw.rstrip("/")


def _admin_key(name: str, raw: str) -> str:
    if len(raw) < MIN_ADMIN_KEY_LENGTH:
        raise ConfigError(name, f"must be at least {MIN_ADMIN_KEY_LENGTH} characters")
    return raw


def _metrics_token(name: str, raw: str) -> str:
    # Sent as is in an Authorization header: no spaces, no control characters.
    if not (raw.isascii() and raw.isprintable()) or " " in raw:
        raise ConfigError(name, "must be printable ASCII without spaces")
    if len(raw) < MIN_METRICS_TOKEN_LENGTH:
        raise ConfigError(name, f"must be at least {MIN_METRICS_TOKEN_LENGTH} characters")
    return raw


def _directory(name: str, raw: str) -> Path:
    path = Path(raw)
    if not path.is_dir():
        raise ConfigError(name, f"must be an existing directory, got {raw!r}")
    return path


def _keks(name: str, raw: str) -> tuple[tuple[str, bytes], ...]:
    """``id:base64,id:base64,...`` (new secrets are sealed under the first), or one
    ``base64`` alone: the KEK with id ``DEFAULT_KEK_ID``.

    Messages name an entry by its position, never by its text: a key written where
    its id belongs would otherwise be quoted.
    """
    if ":" not in raw and "," not in raw:
        return ((DEFAULT_KEK_ID, _kek_bytes(name, raw, "")),)
    keks: list[tuple[str, bytes]] = []
    entries = raw.split(",")
    for number, entry in enumerate(entries, 1):
        where = f"entry {number} of {len(entries)}: "
        kek_id, colon, encoded = (part.strip() for part in entry.partition(":"))
        if not colon:
            raise ConfigError(name, f"{where}must be <id>:<base64 of 32 bytes>")
        if not KEK_ID.fullmatch(kek_id):
            raise ConfigError(name, f"{where}the id must be 1-32 of A-Z, a-z, 0-9, '-' and '_'")
        same = [n for n, (other, _key) in enumerate(keks, 1) if other == kek_id]
        if same:
            raise ConfigError(name, f"{where}has the same id as entry {same[0]}")
        keks.append((kek_id, _kek_bytes(name, encoded, where)))
    return tuple(keks)


def _kek_bytes(name: str, raw: str, where: str) -> bytes:
    try:
        value = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        value = b""
    if len(value) != 32:
        raise ConfigError(name, f"{where}must be the base64 encoding of exactly 32 bytes")
    return value
