"""The image-URL SSRF guard against DNS rebinding (proxy_app/call/media.py), over real sockets.

The only fake is DNS, at the network boundary: `socket.getaddrinfo` answers the first lookup of
images.rebind.test with 127.0.0.2 (standing in for a public address: it is the one network
GATEWAY_IMAGE_FETCH_ALLOWED_NETWORKS allows here) and every later lookup with 127.0.0.1, where an
"internal" server listens on the same port. A guard that checks one lookup and lets the HTTP
client do another connects to the internal server (the code before the pin did: see the report);
ours connects to the address it checked, for http and for https (SNI and certificate checked
against the original name)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy_app.call import media
from proxy_app.core.errors import InvalidRequest
from proxy_app.upstreams import http as upstream_http

NAME = "images.rebind.test"
PUBLIC, INTERNAL = "127.0.0.2", "127.0.0.1"
PUBLIC_PNG, INTERNAL_PNG = b"\x89PNG public cat", b"\x89PNG INTERNAL SECRET"


@pytest.fixture(autouse=True)
def _real_network(settings):
    settings.IMAGE_FETCH_ALLOWED_NETWORKS = [ipaddress.ip_network(f"{PUBLIC}/32")]
    upstream_http.set_transport(None)  # no fake transport: real sockets
    yield
    upstream_http.reset_clients()


@pytest.fixture
def rebinding_dns(monkeypatch):
    """DNS for *.rebind.test: the first answer `PUBLIC`, every later one `INTERNAL` (or a fixed list)."""
    real = socket.getaddrinfo
    lookups: list[str] = []
    fixed: dict[str, list[str]] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if not str(name).endswith(".rebind.test"):
            return real(host, port, *args, **kwargs)
        lookups.append(name)
        answer = fixed.get(name) or [PUBLIC if len(lookups) == 1 else INTERNAL]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port or 0))) for ip in answer]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups, fixed


class _Site:
    """A one-shot HTTP(S) server on one address: answers a PNG, remembers what it was sent."""

    def __init__(self, body: bytes) -> None:
        self.body, self.requests, self.sni = body, [], []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head.decode("latin-1").lower())
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: image/png\r\nconnection: close\r\n"
            + f"content-length: {len(self.body)}\r\n\r\n".encode()
            + self.body
        )
        await writer.drain()
        writer.close()


async def _pair(tls: ssl.SSLContext | None = None) -> tuple[int, _Site, _Site, list]:
    """A public and an internal site on the same port of two loopback addresses."""
    public, internal = _Site(PUBLIC_PNG), _Site(INTERNAL_PNG)
    for _ in range(20):
        first = await asyncio.start_server(public.handle, PUBLIC, 0, ssl=tls)
        port = first.sockets[0].getsockname()[1]
        try:
            second = await asyncio.start_server(internal.handle, INTERNAL, port, ssl=tls)
        except OSError:  # that port is taken on 127.0.0.1: try another
            first.close()
            continue
        return port, public, internal, [first, second]
    raise RuntimeError("no port free on both loopback addresses")


def _close(servers) -> None:
    for server in servers:
        server.close()


async def test_http_fetch_is_pinned_to_the_checked_address(rebinding_dns):
    lookups, _ = rebinding_dns
    port, public, internal, servers = await _pair()
    try:
        mime, data = await media.fetch_image(f"http://{NAME}:{port}/cat.png?sig=1")
    finally:
        _close(servers)
    assert (mime, data) == ("image/png", PUBLIC_PNG)
    assert internal.requests == []  # the second answer (127.0.0.1) was never used
    assert lookups == [NAME]  # one lookup: nothing left to rebind
    assert public.requests[0].startswith("get /cat.png?sig=1 http/1.1")
    assert f"host: {NAME}:{port}\r\n" in public.requests[0]  # the name, not the pinned IP


def _tls_for(name: str, tmp_path) -> tuple[ssl.SSLContext, str]:
    """A test CA (its PEM path, for SSL_CERT_FILE) and a server context with a certificate for `name`."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "leaf.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return server, str(ca_path)


async def test_https_fetch_is_pinned_with_sni_and_certificate_of_the_name(rebinding_dns, tmp_path, monkeypatch):
    lookups, _ = rebinding_dns
    server_tls, ca_file = _tls_for(NAME, tmp_path)
    sni_seen: list[str | None] = []
    server_tls.sni_callback = lambda sock, server_name, ctx: sni_seen.append(server_name)
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # the media client trusts our test CA
    upstream_http.reset_clients()
    port, public, internal, servers = await _pair(server_tls)
    try:
        assert await media.fetch_image(f"https://{NAME}:{port}/cat.png") == ("image/png", PUBLIC_PNG)
        # a name the certificate does not cover fails, although the pinned address is the same
        _, fixed = rebinding_dns
        fixed["other.rebind.test"] = [PUBLIC]
        with pytest.raises(InvalidRequest, match="could not fetch the image"):
            await media.fetch_image(f"https://other.rebind.test:{port}/cat.png")
    finally:
        _close(servers)
    assert internal.requests == [] and lookups == [NAME, "other.rebind.test"]
    assert sni_seen == [NAME, "other.rebind.test"]  # SNI is the name, never the IP
    assert f"host: {NAME}:{port}\r\n" in public.requests[0]


async def test_one_private_address_in_the_answer_refuses_the_name(rebinding_dns):
    _, fixed = rebinding_dns
    fixed[NAME] = [PUBLIC, INTERNAL]
    port, public, internal, servers = await _pair()
    try:
        with pytest.raises(InvalidRequest, match="private or local addresses are not allowed"):
            await media.fetch_image(f"http://{NAME}:{port}/cat.png")
    finally:
        _close(servers)
    assert public.requests == [] and internal.requests == []
