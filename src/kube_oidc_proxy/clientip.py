"""Where a request came from, believing ``X-Forwarded-For`` and ``X-Real-IP`` only from trusted proxies.

Any client can write ``X-Forwarded-For: 10.0.0.1``. Those headers say something only when the TCP peer is
a load balancer or ingress the operator listed in ``--trusted-proxy-cidrs`` (default: none). Then the
chain's entries that parse as IP addresses (as kube-apiserver's Go parses them: no IPv6 zone) are
believed, in order; the client is the last address before the first trusted hop counted from the peer (so
a client cannot hide behind a forged entry on the left), else the peer itself. From any other peer both
headers are ignored: logs, audit events, the ``remote-client-ip`` extra and the ``X-Forwarded-For`` sent to
kube-apiserver carry the peer alone.

Pure: header values and addresses in, an ``Origin`` out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from kube_oidc_proxy.http1.headers import Headers, comma_tokens

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Origin:
    peer_ip: str  # the TCP peer, always
    forwarded_for: tuple[str, ...] = ()  # believed X-Forwarded-For entries, oldest first, normalised
    real_ip: str = ""  # a believed X-Real-IP, normalised
    client_ip: str = ""  # who the request is from, as far as the proxy believes

    @property
    def upstream_forwarded_for(self) -> bytes:
        """The ``X-Forwarded-For`` for kube-apiserver: the believed chain, then the peer."""
        return ", ".join((*self.forwarded_for, self.peer_ip)).encode()


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs as Go's net.ParseCIDR reads them (host bits allowed); a bare address is a /32 or /128."""
    return tuple(ipaddress.ip_network(text.strip(), strict=False) for text in texts if text.strip())


def _address(text: bytes | str) -> Address | None:
    try:
        raw = text.decode("ascii") if isinstance(text, bytes) else text
        return ipaddress.ip_address(raw.strip())
    except (ValueError, UnicodeDecodeError):
        return None


def _forwarded_address(text: bytes) -> Address | None:
    """An address from a header, as kube-apiserver's ``net.ParseIP`` would read it: Python also accepts an
    IPv6 zone, and any text after its ``%`` (``::1%x, 10.0.0.1``), which Go refuses."""
    address = _address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        return None
    return address


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()

    def trusts(self, address: Address | None) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def origin(self, headers: Headers, peer_ip: str) -> Origin:
        if not self.networks or not self.trusts(_address(peer_ip)):
            return Origin(peer_ip, client_ip=peer_ip)
        chain: list[Address] = []
        for entry in comma_tokens(v for n, v in headers if n == b"x-forwarded-for"):
            address = _forwarded_address(entry)
            if address is not None:
                chain.append(address)
        real = None
        for name, value in headers:
            if name == b"x-real-ip":
                real = _forwarded_address(value)
                break
        client = peer_ip
        for address in reversed(chain):
            client = str(address)
            if not self.trusts(address):
                break
        else:
            if not chain and real is not None:
                client = str(real)
        return Origin(
            peer_ip,
            forwarded_for=tuple(str(a) for a in chain),
            real_ip=str(real) if real is not None else "",
            client_ip=client,
        )


NO_TRUSTED_PROXIES: Final = TrustedProxies()
