"""Test-only TLS: a test CA, and TLS-terminating proxies in front of plain servers.

The embedded valkey-server is built without TLS, so TLS topologies put a
:class:`TlsProxy` in front of each server port. A proxy *sniffs*: a connection
whose first byte opens a TLS handshake (0x16) gets TLS, any other is forwarded as
it is. That lets Sentinel (which speaks plaintext) and a client (TLS) use the
same address for the master, the one Sentinel hands out.

:class:`TlsCluster` announces the proxies' ports to clients
(``cluster-announce-client-port``), so CLUSTER SLOTS and MOVED send a client to
the proxies while the nodes gossip on their own bus ports.
:class:`TlsSentinelSet` is a master with a password behind a proxy, monitored by
one Sentinel with a password of its own, behind a proxy that also wants a client
certificate.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests._servers import HOST, Cluster, ServerProcess, free_port, wait_for

#: The first byte of a TLS record carrying a handshake message (a ClientHello).
_TLS_HANDSHAKE = 0x16
_HANDSHAKE_TIMEOUT = 5.0
#: How often idle threads look whether the proxy is stopping.
_POLL = 0.1
MASTER_PASSWORD = "master-secret-pw"
SENTINEL_PASSWORD = "sentinel-secret-pw"


# Certificates ----------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """PEM files: the CA, a server certificate for 127.0.0.1 and localhost, a client
    certificate (mutual TLS), and a CA that signed none of them."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path

    def server_context(self, *, client_certs: bool = False) -> ssl.SSLContext:
        """What a TLS server presents; ``client_certs``: demand a certificate from the CA."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        if client_certs:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.ca)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    *,
    server: bool,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    """Write a fresh :class:`Pki` into ``directory`` (one-day certificates)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("jwks-service test CA")
    server_key, server_cert = _leaf(ca_key, ca_cert, "store", server=True)
    client_key, client_cert = _leaf(ca_key, ca_cert, "jwks-service", server=False)
    _other_key, other_cert = _ca("some other CA")
    pem = serialization.Encoding.PEM
    pki = Pki(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.pem",
    )
    pki.ca.write_bytes(ca_cert.public_bytes(pem))
    pki.server_cert.write_bytes(server_cert.public_bytes(pem))
    _write_key(server_key, pki.server_key)
    pki.client_cert.write_bytes(client_cert.public_bytes(pem))
    _write_key(client_key, pki.client_key)
    pki.other_ca.write_bytes(other_cert.public_bytes(pem))
    return pki


# The proxy -------------------------------------------------------------------


class TlsProxy:
    """Listens on a free port of 127.0.0.1 and forwards to ``target_port``: with TLS
    to whoever starts a TLS handshake, in plaintext to anyone else.

    Threads, not asyncio: one accepts, and one per connection relays both ways, so
    no TLS socket is ever read and written by two threads at once.
    """

    def __init__(self, target_port: int, context: ssl.SSLContext) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._context = context
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        #: Connections that spoke TLS, and those that did not: what tests assert on.
        self.tls_connections = 0
        self.plain_connections = 0
        self._open = 0

    def start(self) -> None:
        listener = socket.create_server((HOST, self.port), backlog=64)
        listener.settimeout(_POLL)
        self._spawn(self._accept, listener)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(10)

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Return once every connection is closed on the proxy's side."""
        wait_for(lambda: self._open == 0, f"TLS proxy on port {self.port} to go idle", timeout)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while not self._stopping.is_set():
                try:
                    client, _address = listener.accept()
                except TimeoutError:
                    continue
                self._spawn(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        sockets = [client]
        with self._lock:
            self._open += 1
        try:
            client.settimeout(_HANDSHAKE_TIMEOUT)
            first = client.recv(1, socket.MSG_PEEK)
            if not first:
                return
            if first[0] == _TLS_HANDSHAKE:
                client = self._context.wrap_socket(client, server_side=True)
                sockets.append(client)
                self.tls_connections += 1
            else:
                self.plain_connections += 1
            upstream = socket.create_connection((HOST, self.target_port), timeout=5)
            sockets.append(upstream)
            self._relay(client, upstream)
        except OSError:
            pass  # a refused handshake (a client with another CA), a peer gone
        finally:
            for sock in sockets:
                sock.close()
            with self._lock:
                self._open -= 1

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        client.settimeout(_HANDSHAKE_TIMEOUT)
        upstream.settimeout(_HANDSHAKE_TIMEOUT)
        peers = {client: upstream, upstream: client}
        while not self._stopping.is_set():
            # Bytes the TLS layer has already decrypted do not wake select().
            pending = isinstance(client, ssl.SSLSocket) and client.pending() > 0
            readable = [client] if pending else select.select(list(peers), [], [], _POLL)[0]
            for sock in readable:
                try:
                    data = sock.recv(65536)
                except ssl.SSLWantReadError:
                    continue  # a record without application data (a session ticket)
                if not data:
                    return
                peers[sock].sendall(data)


# Topologies ------------------------------------------------------------------


class _AuthServer(ServerProcess):
    """A server (or Sentinel) with ``requirepass``; its own client sends the password."""

    def __init__(
        self,
        binary: Path,
        directory: Path,
        port: int,
        config: list[str],
        *,
        password: str,
        sentinel: bool = False,
    ) -> None:
        super().__init__(
            binary, directory, port, [*config, f"requirepass {password}"], sentinel=sentinel
        )
        self.password = password

    def client(self) -> redis.Redis:
        return redis.Redis(
            host=HOST,
            port=self.port,
            password=self.password,
            decode_responses=True,
            socket_timeout=2,
        )


class TlsSentinelSet:
    """A master with a password behind a TLS proxy, and one Sentinel with a password
    of its own behind another that wants a client certificate. Sentinel monitors
    the master at its proxy's port (in plaintext), so that is the address it gives
    clients, who then speak TLS to it.

    The master doubles as a single TLS server: :attr:`server_url`.
    """

    def __init__(self, binary: Path, directory: Path, pki: Pki, name: str = "tlsmaster") -> None:
        self.name = name
        self.pki = pki
        self.master = _AuthServer(
            binary, directory / "master", free_port(), [], password=MASTER_PASSWORD
        )
        self.master_proxy = TlsProxy(self.master.port, pki.server_context())
        #: The master again, for clients that must show a certificate from the CA.
        self.mtls_proxy = TlsProxy(self.master.port, pki.server_context(client_certs=True))
        self.sentinel = _AuthServer(
            binary,
            directory / "sentinel",
            free_port(),
            [
                f"sentinel monitor {name} {HOST} {self.master_proxy.port} 1",
                f"sentinel auth-pass {name} {MASTER_PASSWORD}",
                f"sentinel down-after-milliseconds {name} 5000",
            ],
            password=SENTINEL_PASSWORD,
            sentinel=True,
        )
        #: The Sentinel wants a client certificate too: proof that ssl_certfile reaches it.
        self.sentinel_proxy = TlsProxy(self.sentinel.port, pki.server_context(client_certs=True))
        self.setup_seconds = 0.0

    def url(self, query: str = "", *, sentinel_password: bool = True) -> str:
        """``rediss+sentinel://`` with the master's password, trusting the test CA."""
        pki = self.pki
        params = [
            f"ssl_ca_certs={pki.ca}",
            f"ssl_certfile={pki.client_cert}",
            f"ssl_keyfile={pki.client_key}",
        ]
        if sentinel_password:
            params.append(f"sentinel_password={SENTINEL_PASSWORD}")
        if query:
            params.append(query)
        return (
            f"rediss+sentinel://:{MASTER_PASSWORD}@{HOST}:{self.sentinel_proxy.port}/{self.name}"
            f"?{'&'.join(params)}"
        )

    def server_url(self, query: str = "", *, mtls: bool = False) -> str:
        """``rediss://`` to the master itself, with its password."""
        port = (self.mtls_proxy if mtls else self.master_proxy).port
        return f"rediss://:{MASTER_PASSWORD}@{HOST}:{port}/0?{query}".rstrip("?")

    def start(self) -> None:
        started = time.monotonic()
        for proxy in (self.master_proxy, self.mtls_proxy, self.sentinel_proxy):
            proxy.start()
        self.master.start()
        self.sentinel.start()
        wait_for(self._master_known, "the Sentinel to see its master")
        self.setup_seconds = time.monotonic() - started

    def _master_known(self) -> bool:
        with self.sentinel.client() as c:
            state = c.sentinel_master(self.name)
        return bool(state["is_master"]) and not state["is_sdown"]

    def flush(self) -> None:
        with self.master.client() as c:
            c.flushall()

    def stop(self) -> None:
        for thing in (self.sentinel, self.master):
            thing.stop()
        for proxy in (self.sentinel_proxy, self.mtls_proxy, self.master_proxy):
            proxy.stop()


class TlsCluster(Cluster):
    """Three Cluster masters, each behind a TLS proxy whose port it announces to
    clients (``cluster-announce-client-port``); the bus stays on the nodes' own ports."""

    def __init__(self, binary: Path, directory: Path, pki: Pki) -> None:
        super().__init__(binary, directory)
        self.pki = pki
        self.proxies = [TlsProxy(node.port, pki.server_context()) for node in self.nodes]
        for node, proxy in zip(self.nodes, self.proxies, strict=True):
            node.config.append(f"cluster-announce-client-port {proxy.port}")

    @property
    def url(self) -> str:
        hosts = ",".join(f"{HOST}:{p.port}" for p in self.proxies)
        return f"rediss+cluster://{hosts}?ssl_ca_certs={self.pki.ca}"

    def start(self) -> None:
        for proxy in self.proxies:
            proxy.start()
        super().start()

    def stop(self) -> None:
        super().stop()
        for proxy in self.proxies:
            proxy.stop()


@contextlib.contextmanager
def running_tls(topology: TlsCluster | TlsSentinelSet) -> Iterator[TlsCluster | TlsSentinelSet]:
    """Start ``topology``; stop every process and proxy on exit, even after a failed start."""
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()
