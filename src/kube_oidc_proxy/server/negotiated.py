"""The protocol a client connection speaks, as TLS negotiated it (ALPN): ``h2`` or HTTP/1.1.

asyncio asks for a protocol object before the handshake; this one lives only until the handshake is done,
then hands the transport to an ``H2ClientConnection`` or a ``ClientConnection`` for good. A client that
names no protocol (curl with ``--http1.1``, old clients) gets HTTP/1.1, as Go's server does.
"""

from __future__ import annotations

import asyncio

from kube_oidc_proxy.server.connection import ClientConnection
from kube_oidc_proxy.server.contracts import ConnectionServer
from kube_oidc_proxy.server.h2_connection import H2ClientConnection


class Negotiated(asyncio.Protocol):
    __slots__ = ("_h2_max_streams", "_server")

    def __init__(self, server: ConnectionServer, h2_max_streams: int) -> None:
        self._server = server
        self._h2_max_streams = h2_max_streams

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        protocol: asyncio.Protocol
        if chosen == "h2":
            protocol = H2ClientConnection(self._server, self._h2_max_streams)
        else:
            protocol = ClientConnection(self._server)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
