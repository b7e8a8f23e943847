"""One live message to every page of this process, framed once (opt-in: SIQ_FRAME_ONCE=1).

A publication goes to every open page of a portal; under daphne each page's copy went
through channels' send wrappers, daphne's reply routing and autobahn's framing, one page
at a time: per page and per message, about as much Python as everything else of a
webhook (``make bench``, docs/benchmarks.md). Autobahn can frame a message once and write
the same bytes to many sockets (``prepareMessage`` / ``sendPreparedMessage``); this module
does that for the live page's HTML when the page's socket is daphne's. Anywhere else (the
test communicator, another ASGI server) pages are sent to as before.

It leans on internals of daphne (its send is ``partial(server.handle_reply, protocol)``),
autobahn (``prepareMessage``, ``payloadHybi``, ``_perMessageCompress``, ``send_queue``) and
Twisted (``dataBuffer``, ``_tempDataBuffer``, ``transport.socket``): the three are pinned in
pyproject.toml, and on the first connection ``contract_problems`` checks that each still
means what this module takes it to mean; if one does not, frame-once turns itself off for
the process and says so in the log (tests/test_frame_once_contract.py runs it under the real
daphne and fails then).
"""

from __future__ import annotations

import functools
import logging
import socket
from collections import deque
from importlib.metadata import version

from daphne.server import Server

logger = logging.getLogger(__name__)

# Where KeepSocket puts the page's daphne protocol in the consumer's scope.
SCOPE_KEY = "siq.socket"


class KeepSocket:
    """ASGI middleware for websockets: note daphne's protocol object of this connection."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        protocol = protocol_of(send)
        if protocol is not None and _usable(protocol):
            scope = {**scope, SCOPE_KEY: protocol}
        return await self.app(scope, receive, send)


# None until the first of daphne's connections is checked; then whether frame-once is used.
_checked: bool | None = None
PINNED = ("daphne", "twisted", "autobahn")


def _usable(protocol) -> bool:
    global _checked
    if _checked is None:
        problems = contract_problems(protocol)
        versions = ", ".join(f"{name} {version(name)}" for name in PINNED)
        if problems:
            logger.error("frame-once: off (%s): %s", versions, "; ".join(problems))
        else:
            logger.info("frame-once: on (%s; internals as expected)", versions)
        _checked = not problems
    return _checked


def contract_problems(protocol) -> list[str]:
    """What of daphne's, autobahn's and Twisted's internals no longer is as this module uses
    it, for a connection's protocol (an empty list: all is as expected)."""
    problems = []

    def expect(owner, name: str, kinds, what: str) -> None:
        if not hasattr(owner, name):
            problems.append(f"{what}.{name} is gone")
        elif not isinstance(getattr(owner, name), kinds):
            problems.append(f"{what}.{name} is {type(getattr(owner, name)).__name__}")

    for state in ("STATE_CONNECTING", "STATE_OPEN", "STATE_CLOSING"):
        expect(protocol, state, int, "protocol")
    expect(protocol, "state", int, "protocol")
    expect(protocol, "send_queue", deque | list, "protocol")
    if not hasattr(protocol, "_perMessageCompress"):
        problems.append("protocol._perMessageCompress is gone")
    for method in ("sendData", "sendPreparedMessage"):
        if not callable(getattr(protocol, method, None)):
            problems.append(f"protocol.{method} is not callable")
    factory = getattr(protocol, "factory", None)
    if not callable(getattr(factory, "prepareMessage", None)):
        problems.append("protocol.factory.prepareMessage is not callable")
    else:
        # One final, unmasked text frame: what a browser reads.
        prepared = factory.prepareMessage(b"hello")
        if getattr(prepared, "payloadHybi", None) != b"\x81\x05hello":
            problems.append("prepareMessage(...).payloadHybi is not the framed message")
    transport = getattr(protocol, "transport", None)
    expect(transport, "TLS", bool, "transport")
    expect(transport, "dataBuffer", bytes, "transport")
    expect(transport, "_tempDataBuffer", list, "transport")
    expect(transport, "connected", int, "transport")  # bool or 0/1
    expect(transport, "disconnecting", int, "transport")
    expect(transport, "socket", socket.socket, "transport")
    if not callable(getattr(transport, "write", None)):
        problems.append("transport.write is not callable")
    return problems


def protocol_of(send):
    """Daphne hands each connection ``partial(server.handle_reply, protocol)`` as its send."""
    if not isinstance(send, functools.partial) or len(send.args) != 1 or send.keywords:
        return None
    if not isinstance(getattr(send.func, "__self__", None), Server):
        return None
    if getattr(send.func, "__name__", "") != "handle_reply":
        return None
    protocol = send.args[0]
    if not callable(getattr(protocol, "sendPreparedMessage", None)):
        return None
    return protocol


# The last few messages framed: every page of a publication gets the same str object.
_framed: deque = deque(maxlen=4)


def send_text(protocol, text: str) -> bool:
    """Write ``text`` to the page's socket, framed once for all pages; False when the
    socket is not open yet (the caller sends it the usual way). A closing socket gets
    nothing, as daphne would give it."""
    if protocol.state == protocol.STATE_CONNECTING:
        return False
    if protocol.state != protocol.STATE_OPEN:
        return True
    prepared = next((framed for known, framed in _framed if known is text), None)
    if prepared is None:
        prepared = protocol.factory.prepareMessage(text.encode("utf-8"))
        _framed.append((text, prepared))
    if protocol._perMessageCompress is not None:
        protocol.sendPreparedMessage(prepared)  # compressed per socket: autobahn's way
    else:
        _write(protocol, prepared.payloadHybi)
    return True


def _write(protocol, data: bytes) -> None:
    """Write ``data`` to the socket now when nothing is waiting to go before it.

    Twisted never writes at once: it buffers, asks the event loop to watch the socket for
    writing, writes on the next turn of the loop and stops watching — two epoll calls and a
    turn per page and message, more than the write itself. With nothing buffered (the
    usual case: pages read what they are sent) the bytes go straight to the socket, and
    only what it did not take is left to Twisted, behind them. Anything unusual (TLS,
    data still waiting, a closing connection) goes the usual way.
    """
    transport = protocol.transport
    if (
        protocol.send_queue
        or getattr(transport, "TLS", True)
        or getattr(transport, "dataBuffer", b"?")
        or getattr(transport, "_tempDataBuffer", [b"?"])
        or not getattr(transport, "connected", False)
        or getattr(transport, "disconnecting", True)
        or getattr(transport, "socket", None) is None
    ):
        protocol.sendData(data)
        return
    try:
        sent = transport.socket.send(data)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        protocol.sendData(data)  # a broken connection: Twisted finds out and closes it
        return
    if sent < len(data):
        transport.write(data[sent:])
