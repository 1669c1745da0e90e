"""The real client address of a request: the socket peer, or the X-Forwarded-For client behind a trusted proxy.

GATEWAY_TRUSTED_PROXIES (settings.TRUSTED_PROXIES) lists the proxies' IPs/CIDRs; empty (the
default) trusts no forwarding header at all. When the socket peer is a trusted proxy, the client
is the rightmost X-Forwarded-For hop that is not itself a trusted proxy (hops to its left were
written by the client and prove nothing); otherwise it is the peer, whatever the headers say.

`ClientIPASGI`, outermost in gateway_site.asgi, puts that address in `scope["client"]` (the peer
stays in `scope["gateway.peer"]`) for HTTP and WebSocket scopes alike. Everything downstream reads
it from there, so they all agree: Django's REMOTE_ADDR (the admin, django-axes' lockout through
AXES_CLIENT_IP_CALLABLE = `request_ip`), the proxy edge's requests (the access log, per-key IP
allow-lists) and the /metrics allow-list. The ASGI servers' own forwarding support must stay off
(gateway_site.serve and the test server turn uvicorn's off), or a forged header from a loopback
peer would be taken before this module sees it.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=4096)
def parse_ip(text: str) -> Address | None:
    """An address from a peer or a hop ('::ffff:10.0.0.1' is 10.0.0.1); None when it is not one."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return ip.ipv4_mapped
    return ip


def in_networks(ip: Address | None, networks) -> bool:
    return ip is not None and any(ip.version == net.version and ip in net for net in networks)


def resolve(peer: str, forwarded_for: str, trusted=None) -> str:
    """The client address, from the socket peer and the X-Forwarded-For value (all its headers
    joined by commas)."""
    trusted = settings.TRUSTED_PROXIES if trusted is None else trusted
    if not trusted or not forwarded_for or not in_networks(parse_ip(peer), trusted):
        return peer
    client = peer
    for hop in reversed(forwarded_for.split(",")):
        ip = parse_ip(hop)
        if ip is None:  # junk: the trusted proxy to its right is the last address we can vouch for
            return client
        client = str(ip)
        if not in_networks(ip, trusted):
            return client
    return client  # every hop is a trusted proxy: the leftmost is as far as we can see


def scope_ip(scope) -> str:
    """The client address of an ASGI scope ('' when the server gave none, e.g. a unix socket)."""
    client = scope.get("client")
    return str(client[0]) if client else ""


def request_ip(request) -> str:
    """The client address of a Django request (AXES_CLIENT_IP_CALLABLE): REMOTE_ADDR, which
    ClientIPASGI has already set to the real client."""
    return request.META.get("REMOTE_ADDR", "")


class ClientIPASGI:
    """ASGI wrapper: `scope["client"]` becomes the real client (see the module docstring)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if settings.TRUSTED_PROXIES and scope["type"] in ("http", "websocket") and scope.get("client"):
            forwarded = b",".join(v for k, v in scope["headers"] if k == b"x-forwarded-for")
            peer = str(scope["client"][0])
            client = resolve(peer, forwarded.decode("latin-1"))
            if client != peer:
                scope = {**scope, "client": (client, 0), "gateway.peer": peer}
        return await self.app(scope, receive, send)
