"""Request bodies over the cap are refused while daphne/Twisted read them, not after.

Against a real `manage.py serve` process: a POST declaring 100 MB is answered 413 without
its body being sent, a chunked 100 MB POST is cut off at the cap, and five of each at once
leave the server's resident memory where it was. Plus the contract of the one seam that
leans on daphne's and Twisted's request handling (dashboard/server/bodycap.py).
"""

from __future__ import annotations

import inspect
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version

import pytest
import requests

from dashboard.server import bodycap

HUNDRED_MB = 100 * 1024 * 1024
CHUNK = 64 * 1024


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def settled_rss(pid: int) -> int:
    """The process's RSS once it stops moving (the largest of a few readings)."""
    time.sleep(0.5)
    return max(rss_kb(pid) for _ in range(3) if time.sleep(0.1) is None)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    try:
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def head(path: str, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def declared(port: int, path: str) -> tuple[bytes, float]:
    """Headers declaring 100 MB, no body: the answer and how long it took."""
    started = time.monotonic()
    with connect(port) as sock:
        sock.sendall(head(path, Content_Length=str(HUNDRED_MB), Expect="100-continue"))
        return read_answer(sock), time.monotonic() - started


def chunked(port: int, path: str) -> tuple[int, bytes]:
    """Up to 100 MB in 64 KB chunks until the server stops reading: bytes sent, answer."""
    sent = 0
    chunk = b"%x\r\n%s\r\n" % (CHUNK, b"x" * CHUNK)
    with connect(port) as sock:
        sock.settimeout(5)
        sock.sendall(head(path, Transfer_Encoding="chunked"))
        try:
            while sent < HUNDRED_MB:
                sock.sendall(chunk)
                sent += CHUNK
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        return sent, read_answer(sock)


@pytest.mark.django_db(transaction=True)
def test_a_huge_body_is_refused_unread_and_memory_stays_put(server, settings):
    limit = settings.MAX_REQUEST_BODY_BYTES
    pid = server.process.pid
    path = f"/webhooks/salesiq/{uuid.uuid4()}/"
    # Warm up: a request within the cap still reaches the application (unknown portal).
    small = requests.post(f"{server.url}{path}", data=b"{}", timeout=10)
    assert small.status_code == 404
    before = settled_rss(pid)

    answer, took = declared(server.port, path)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"100 Continue" not in answer
    assert took < 5
    after_one = settled_rss(pid)

    sent, answer = chunked(server.port, path)
    assert sent < 8 * 1024 * 1024, f"the server read {sent:,} bytes of a chunked body"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    after_chunked = settled_rss(pid)

    with ThreadPoolExecutor(max_workers=10) as pool:
        declared_ones = [pool.submit(declared, server.port, path) for _ in range(5)]
        chunked_ones = [pool.submit(chunked, server.port, path) for _ in range(5)]
        answers = [f.result()[0] for f in declared_ones]
        cut_at = [f.result()[0] for f in chunked_ones]
    assert all(a.startswith(b"HTTP/1.1 413 ") for a in answers)
    assert all(sent < 8 * 1024 * 1024 for sent in cut_at), cut_at
    after_five = settled_rss(pid)

    # Still serving, and a body within the cap is still read.
    assert requests.post(f"{server.url}{path}", data=b"{}", timeout=10).status_code == 404
    growth = {
        "declared 100 MB": after_one - before,
        "chunked 100 MB": after_chunked - after_one,
        "5 + 5 concurrent": after_five - after_chunked,
    }
    print(f"RSS before {before} kB; growth (kB): {growth}; cut at {cut_at}; cap {limit}")
    print(f"chunked answer: {answer[:40]!r}")
    assert after_one - before < 3 * 1024
    assert after_five - before < 10 * 1024, growth


class _Server:
    """What daphne's request asks of its server, and the cap."""

    max_request_body = 1024

    def __init__(self) -> None:
        self.connected: list = []

    def protocol_connected(self, protocol) -> None:
        self.connected.append(protocol)

    def protocol_disconnected(self, protocol) -> None:
        pass


def _channel():
    from twisted.internet.testing import StringTransport

    factory = bodycap.CappedHTTPFactory(_Server())
    protocol = factory.buildProtocol(("127.0.0.1", 5555))
    transport = StringTransport(peerAddress=None)
    protocol.makeConnection(transport)
    return protocol, transport


def test_the_daphne_and_twisted_contract():
    """What dashboard/server/bodycap.py relies on; fails when a daphne or Twisted upgrade
    changes it."""
    import daphne.http_protocol
    import daphne.server
    from twisted.web import http

    assert version("daphne").startswith(bodycap.DAPHNE_VERSIONS)
    assert version("twisted").startswith(bodycap.TWISTED_VERSIONS)
    # Server.run builds its factory from the module's name HTTPFactory, daphne's own.
    assert daphne.server.HTTPFactory is daphne.http_protocol.HTTPFactory
    assert "HTTPFactory(self)" in inspect.getsource(daphne.server.Server.run)
    for name in ("gotLength", "handleContentChunk", "requestReceived"):
        assert callable(getattr(http.Request, name))
    assert issubclass(bodycap.CappedRequest, daphne.http_protocol.WebRequest)

    # Declared too long: 413 once the headers are in, no 100 Continue, closing, nothing kept.
    protocol, transport = _channel()
    protocol.dataReceived(
        b"POST /webhooks/x/ HTTP/1.1\r\nHost: a\r\nContent-Length: 104857600\r\n"
        b"Expect: 100-continue\r\n\r\n" + b"y" * 4096
    )
    written = transport.value()
    assert written.startswith(b"HTTP/1.1 413 "), written
    assert b"100 Continue" not in written
    assert transport.disconnecting

    # Chunked past the cap: cut off there.
    protocol, transport = _channel()
    protocol.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert transport.value() == b""
    protocol.dataReceived(b"400\r\n" + b"z" * 1024 + b"\r\n")  # exactly the cap: fine
    assert transport.value() == b"" and not transport.disconnecting
    protocol.dataReceived(b"1\r\nz\r\n0\r\n\r\n")  # one byte over, and the end
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert transport.disconnecting
