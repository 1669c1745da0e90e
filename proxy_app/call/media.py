"""Fetching http(s) image URLs into inline data, behind an SSRF guard.

Every address the host resolves to must be public (not private, loopback, link-local, reserved,
multicast) unless it lies in GATEWAY_IMAGE_FETCH_ALLOWED_NETWORKS. Redirects are not followed.
Size (GATEWAY_IMAGE_FETCH_MAX_BYTES) and time (GATEWAY_IMAGE_FETCH_TIMEOUT) are capped.
Residual risk, accepted: DNS could change between our check and httpx's own lookup (rebinding).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from proxy_app.core import hub
from proxy_app.core.errors import InvalidRequest
from proxy_app.upstreams.http import get_client

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
    await _check_host(pieces.hostname, pieces.port or (443 if pieces.scheme == "https" else 80))
    try:
        async with asyncio.timeout(settings.IMAGE_FETCH_TIMEOUT):
            return await _download(url)
    except TimeoutError:
        raise InvalidRequest(f"fetching the image at {_safe(url)} took too long", param="messages") from None
    except httpx.HTTPError as exc:
        raise InvalidRequest(
            f"could not fetch the image at {_safe(url)}: {type(exc).__name__}", param="messages"
        ) from None


async def _download(url: str) -> tuple[str, bytes]:
    async with get_client().stream("GET", url, follow_redirects=False) as response:
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


async def _check_host(host: str, port: int) -> None:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InvalidRequest(f"cannot resolve the image host {host!r}", param="messages") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global and not _allow_listed(address):
            raise InvalidRequest(
                f"image URLs pointing at private or local addresses are not allowed ({host})", param="messages"
            )


def _allow_listed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(address in net for net in settings.IMAGE_FETCH_ALLOWED_NETWORKS)


def _safe(url: str) -> str:
    """The URL without query string (it may carry a signature or token) for error messages."""
    pieces = urlsplit(url)
    return f"{pieces.scheme}://{pieces.netloc}{pieces.path}"[:200]
