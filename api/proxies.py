"""The client's address behind trusted reverse proxies (``FORWARDED_ALLOW_IPS``).

gunicorn trusts those proxies for the scheme only; the address a request came from is the
proxy's. ``ClientAddress`` sets ``REMOTE_ADDR`` to the client's, so the rate limits, the logs
and the AUTH_DISABLED rule see who is really calling. ``X-Forwarded-For`` is read only from a
trusted peer, and from the right: each trusted proxy appends the address it was called from,
so the first address from the right that is not a trusted proxy is the client. Addresses a
client writes into the header itself stand to the left of it and are never used.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

ANY = "*"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The proxies named by ``FORWARDED_ALLOW_IPS``: addresses or networks, comma-separated,
    or ``*`` for every peer (only when nothing but the proxy can reach the API)."""

    def __init__(self, allowed: str) -> None:
        names = [name.strip() for name in allowed.split(",") if name.strip()]
        self.any = ANY in names
        self.networks: list[Network] = [ipaddress.ip_network(name, strict=False)
                                         for name in names if name != ANY]

    def trusts(self, address: str) -> bool:
        if self.any:
            return True
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client_address(self, peer: str, forwarded_for: Iterable[str]) -> str:
        """The client behind ``peer``: ``peer`` itself unless a trusted proxy, else the last
        (rightmost) address of ``X-Forwarded-For`` that is not a trusted proxy."""
        address = peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops):
            if not self.trusts(address):
                break
            if not _is_address(hop):
                break
            address = hop
        return address


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# Headers by which a proxy says it forwarded a request (WSGI environ names).
FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")
PEER_ADDRESS = "device_jobs.peer_address"


class ClientAddress:
    """WSGI middleware: ``REMOTE_ADDR`` becomes the client's address (the peer's is kept under
    ``device_jobs.peer_address``)."""

    def __init__(self, app: Callable, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    def __call__(self, environ: dict, start_response: Callable):
        peer = environ.get("REMOTE_ADDR", "")
        environ[PEER_ADDRESS] = peer
        forwarded_for = environ.get("HTTP_X_FORWARDED_FOR")
        if forwarded_for and peer:
            environ["REMOTE_ADDR"] = self.proxies.client_address(peer, [forwarded_for])
        return self.app(environ, start_response)


def was_forwarded(environ: dict) -> bool:
    """Whether a proxy (or a client posing as one) relayed this request."""
    return any(environ.get(name) for name in FORWARDING_HEADERS)
