"""Fetching http(s) image URLs into inline data, behind an SSRF guard that DNS rebinding cannot pass.

The host name is resolved once, here. Every address it resolves to must be public (not private,
loopback, link-local, reserved, multicast) unless it lies in GATEWAY_IMAGE_FETCH_ALLOWED_NETWORKS;
then the connection is pinned to the first of those validated addresses: the request goes to an
IP-literal URL, with the original Host header and, for https, the original name as TLS SNI and
as the name the certificate is checked against (httpcore's `sni_hostname`). No second lookup
happens, so a name that answers a public address to the check and 127.0.0.1 to the connection
(rebinding) still reaches only the checked address. Redirects are not followed; no proxy is used
(it would resolve the name itself). Size (GATEWAY_IMAGE_FETCH_MAX_BYTES) and time
(GATEWAY_IMAGE_FETCH_TIMEOUT, the whole fetch, lookup included) are capped.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx
from django.conf import settings

from proxy_app.core import hub
from proxy_app.core.errors import InvalidRequest
from proxy_app.upstreams.http import get_media_client

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/heic", "image/heif")


async def inline_media_urls(messages: list[hub.Message]) -> None:
    """Replace every `media_url` part with the fetched bytes (in place), concurrently."""
    parts = [p for m in messages for p in m.parts if p.type == "media_url"]
    if parts:  # most requests have none: skip gather's future and task bookkeeping
        await asyncio.gather(*(_inline(p) for p in parts))


async def _inline(part: hub.Part) -> None:
    mime, data = await fetch_image(part.url)
    part.type, part.mime_type, part.data, part.url = "media", mime, base64.b64encode(data).decode(), ""


async def fetch_image(url: str) -> tuple[str, bytes]:
    pieces = urlsplit(url)
    if pieces.scheme not in ("http", "https") or not pieces.hostname:
        raise InvalidRequest("image_url must be an http(s) URL or a data: URL", param="messages")
    try:
        port = pieces.port or (443 if pieces.scheme == "https" else 80)
    except ValueError:  # a port out of range or not a number
        raise InvalidRequest(f"the image URL {_safe(url)} has an invalid port", param="messages") from None
    try:
        async with asyncio.timeout(settings.IMAGE_FETCH_TIMEOUT):
            address = await _checked_address(pieces.hostname, port)
            return await _download(url, pieces, address, port)
    except TimeoutError:
        raise InvalidRequest(f"fetching the image at {_safe(url)} took too long", param="messages") from None
    except httpx.HTTPError as exc:
        raise InvalidRequest(
            f"could not fetch the image at {_safe(url)}: {type(exc).__name__}", param="messages"
        ) from None


async def _download(
    url: str, pieces: SplitResult, address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> tuple[str, bytes]:
    """GET the URL from `address` (validated) only: no name is resolved past this point."""
    literal = f"[{address}]" if address.version == 6 else str(address)
    pinned = urlunsplit((pieces.scheme, f"{literal}:{port}", pieces.path or "/", pieces.query, ""))
    host = pieces.netloc.rpartition("@")[2]  # as the client wrote it (port included), no userinfo
    extensions = {"sni_hostname": pieces.hostname} if pieces.scheme == "https" else {}
    request = get_media_client().stream("GET", pinned, headers={"host": host}, extensions=extensions)
    async with request as response:
        if response.status_code != 200:
            raise InvalidRequest(f"the image at {_safe(url)} answered HTTP {response.status_code}", param="messages")
        mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if mime not in IMAGE_TYPES:
            raise InvalidRequest(
                f"the URL {_safe(url)} is not an image (content-type {mime or 'missing'})", param="messages"
            )
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > settings.IMAGE_FETCH_MAX_BYTES:
                raise InvalidRequest(
                    f"the image at {_safe(url)} is larger than {settings.IMAGE_FETCH_MAX_BYTES} bytes", param="messages"
                )
            chunks.append(chunk)
        return mime, b"".join(chunks)


async def _checked_address(host: str, port: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Resolve `host` once; every address must pass the guard; the first is the one to connect to."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InvalidRequest(f"cannot resolve the image host {host!r}", param="messages") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]  # no IPv6 scope id
    for address in addresses:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global and not _allow_listed(address):
            raise InvalidRequest(
                f"image URLs pointing at private or local addresses are not allowed ({host})", param="messages"
            )
    if not addresses:
        raise InvalidRequest(f"cannot resolve the image host {host!r}", param="messages")
    return addresses[0]


def _allow_listed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(address in net for net in settings.IMAGE_FETCH_ALLOWED_NETWORKS)


def _safe(url: str) -> str:
    """The URL without query string (it may carry a signature or token) for error messages."""
    pieces = urlsplit(url)
    return f"{pieces.scheme}://{pieces.netloc}{pieces.path}"[:200]
