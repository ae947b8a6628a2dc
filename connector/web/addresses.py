"""The addresses the service hands out (socket URLs, the loader's address on demo pages).

They go into cacheable answers, so they never come from an arbitrary Host header: a
configured public URL (`CRMCHAT_PUBLIC_URL`) wins; without one, the request's Host is
used only when it names this machine (a loopback name or address) or the configured
`CRMCHAT_HOST`, and otherwise the address the service listens on.
"""

from __future__ import annotations

import ipaddress
import re

from flask import current_app, request

__all__ = ["is_loopback_host", "service_base_url", "socket_base_url"]

# host[:port], host a DNS name, an IPv4 address or a bracketed IPv6 address.
_HOST_PATTERN = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::(?P<port>\d{1,5}))?"
)


def _host_name(host: str) -> str | None:
    match = _HOST_PATTERN.fullmatch(host or "")
    if match is None:
        return None
    return match.group("name").strip("[]").rstrip(".").lower()


def _is_loopback_name(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True  # RFC 6761: always this machine
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_loopback_host(host: str) -> bool:
    """True when a Host header value (`name[:port]`) names this machine."""
    name = _host_name(host)
    return name is not None and _is_loopback_name(name)


def service_base_url() -> str:
    """The service's address for pages and configs, e.g. `https://chat.example.com`."""
    settings = current_app.extensions["crmchat.settings"]
    if settings.public_url:
        return str(settings.public_url)
    name = _host_name(request.host)
    if name is not None and (_is_loopback_name(name) or name == settings.host.lower()):
        return request.host_url.rstrip("/")
    return str(settings.listen_url)


def socket_base_url() -> str:
    """`service_base_url()` with the WebSocket scheme (ws or wss)."""
    base = service_base_url()
    return "wss" + base[len("https") :] if base.startswith("https") else "ws" + base[4:]
