"""Which client a request comes from, for the caps on answers and the subscribe budgets per
client address.

The address is the one uvicorn gives the request: behind nginx, the X-Forwarded-For that nginx
sets to the client alone (nginx/relaychat.conf.template), which uvicorn believes from the
addresses in FORWARDED_ALLOW_IPS only (its default: loopback, where nginx is under `make run`;
compose sets `*`, the backend's port being reachable from its own containers only); without nginx
in front, the peer's address. So a client that reaches the backend directly cannot name an
address of its choice, and nginx's client is the one its per-address rates count. An IPv6 client
counts by its /64, as nginx's rates do: one subscriber usually has a whole /64 to take addresses
from.
"""

from __future__ import annotations

import ipaddress

from fastapi import Request


def request_address(request: Request) -> str:
    """The client's address as the caps count it; empty when unknown (no cap by address)."""
    return address_key(request.client.host) if request.client is not None else ""


def client_address(forwarded_for: str | None) -> str:
    """The client's address, as the caps count it, from the X-Forwarded-For of its WebSocket
    upgrade, which Centrifugo's subscribe proxy passes on and nginx sets to the client alone
    (nginx/relaychat.conf.template, `/connection/`); its last entry if a chain came some other
    way; empty when there is none."""
    if not forwarded_for:
        return ""
    return address_key(forwarded_for.rsplit(",", 1)[-1].strip())


def address_key(host: str) -> str:
    """An IPv4 address as it is (an IPv4-mapped IPv6 one too), an IPv6 address as its /64;
    anything else (not an IP address) as it is."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
