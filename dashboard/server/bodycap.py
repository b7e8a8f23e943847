"""Request bodies over the cap are refused before daphne reads them.

daphne hands a request to the ASGI application only once Twisted has received its whole
body, so a cap in the application (or an ASGI middleware) comes after the memory is
spent: five concurrent unauthenticated 100 MB POSTs took the server from 137 to 555 MB.
Here the request is stopped while Twisted reads it:

- a declared ``Content-Length`` over the cap is answered 413 and the connection closed
  as soon as the headers are in, without reading a byte of the body (and without the
  ``100 Continue`` a client may be waiting for);
- a body without a declared length (chunked) is counted as it arrives and, at the cap,
  answered 413 and the connection closed; nothing more is read or kept.

A reverse proxy's own limit (nginx ``client_max_body_size``) is a second line of defence,
not the only one.

This is the ONE place that leans on daphne and Twisted internals (pinned in
pyproject.toml; tests/test_bodycap.py::test_the_daphne_and_twisted_contract fails if they
change):

- daphne's ``Server.run`` builds its HTTP factory from the name ``daphne.server.HTTPFactory``
  and that factory's ``buildProtocol`` sets ``requestFactory`` to ``daphne.http_protocol.
  WebRequest``: ``CappedServer`` swaps in a factory whose requests are ``CappedRequest``;
- Twisted's ``HTTPChannel`` calls ``Request.gotLength(length)`` once the headers are in
  (before answering ``Expect: 100-continue``), ``Request.handleContentChunk(data)`` for
  each piece of body, and ``Request.requestReceived`` once the body is complete.
"""

from __future__ import annotations

import logging

import daphne.server
from daphne.http_protocol import HTTPFactory, WebRequest

logger = logging.getLogger(__name__)

# The versions this seam was written and checked against (pyproject.toml pins them).
DAPHNE_VERSIONS = ("4.2.",)
TWISTED_VERSIONS = ("26.10.",)


def _answer(limit: int) -> bytes:
    words = f"The request body is larger than this server accepts ({limit:,} bytes).\n"
    body = words.encode("ascii")
    head = (
        "HTTP/1.1 413 Content Too Large\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    ).encode("ascii")
    return head + body


class _Nothing:
    """Where the body of a refused request goes: nowhere."""

    closed = False

    def write(self, data: bytes) -> None:
        pass

    def read(self, size: int = -1) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def close(self) -> None:
        self.closed = True


class CappedRequest(WebRequest):
    """daphne's request, refusing a body over ``limit`` bytes while it is being read."""

    limit = 256 * 1024  # set per server by CappedServer
    refused = False
    received = 0

    def gotLength(self, length):
        self.refused = False
        self.received = 0
        if length is not None and length > self.limit:
            # No "100 Continue" for a body that will not be read.
            self.requestHeaders.removeHeader(b"Expect")
            self._refuse(f"declared {length:,} bytes")
            return
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self.refused:
            return
        self.received += len(data)
        if self.received > self.limit:
            self._refuse(f"more than {self.limit:,} bytes without a declared length")
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        if self.refused:
            return  # answered already; the connection is closing
        super().requestReceived(command, path, version)

    def _refuse(self, why: str) -> None:
        self.refused = True
        self.content = _Nothing()
        transport = self.channel.transport if self.channel is not None else None
        peer = transport.getPeer() if transport is not None else None
        logger.warning(
            "Refused a request body (%s; the limit is %s bytes) from %s",
            why,
            f"{self.limit:,}",
            getattr(peer, "host", "?"),
        )
        if transport is not None:
            transport.write(_answer(self.limit))
            transport.loseConnection()  # stops reading at once, then closes


class CappedHTTPFactory(HTTPFactory):
    def __init__(self, server) -> None:
        super().__init__(server)
        self.request_class = type(
            "CappedRequest", (CappedRequest,), {"limit": server.max_request_body}
        )

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = self.request_class
        return protocol


class CappedServer(daphne.server.Server):
    """daphne's server, refusing request bodies over ``max_request_body`` bytes unread."""

    def __init__(self, *args, max_request_body: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_request_body = max_request_body

    def run(self) -> None:
        original = daphne.server.HTTPFactory
        daphne.server.HTTPFactory = CappedHTTPFactory
        try:
            super().run()
        finally:
            daphne.server.HTTPFactory = original
