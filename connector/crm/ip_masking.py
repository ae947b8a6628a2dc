"""IP masking: with the widget's `privacy.mask_ip`, a visitor's address is kept only as
its network prefix, before anything stores or shows it.

IPv4 keeps its first three bytes (`203.0.113.0/24`), IPv6 its first 48 bits
(`2001:db8:85a3::/48`): the zeroing Google Analytics applies for its IP anonymisation
(https://support.google.com/analytics/answer/2763052), enough for a country or a
network operator and not for a household. Rate limits still count the real address (in
memory or Redis, for minutes), never stored with a chat.

The engine calls `masked_ip` once, in `do_visitor_hello`
(connector/chat/actions/visitors.py), so the presence, the chat and its activity only
ever hold the prefix.
"""

from __future__ import annotations

import ipaddress
from typing import Any

__all__ = ["IPV4_PREFIX_BITS", "IPV6_PREFIX_BITS", "mask_ip", "masked_ip"]

IPV4_PREFIX_BITS = 24
IPV6_PREFIX_BITS = 48


def mask_ip(ip: str) -> str:
    """The network prefix of `ip` in CIDR form; "" for anything that is no address."""
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:203.0.113.7 is an IPv4 visitor
    bits = IPV4_PREFIX_BITS if address.version == 4 else IPV6_PREFIX_BITS
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


def masked_ip(design: Any, ip: str) -> str:
    """`ip` as the widget with `design` keeps it: masked when its privacy says so."""
    privacy = getattr(design, "privacy", None)
    return mask_ip(ip) if getattr(privacy, "mask_ip", False) else ip
