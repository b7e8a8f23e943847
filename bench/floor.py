"""The floor: the same delivery through a bare websockets broadcast server.

`python -m bench.floor` takes the simulator's webhook on a plain asyncio HTTP server, turns
the conversation into a table row (escaped, about the size of the dashboard's), and
broadcasts it to every websocket client with `websockets.broadcast`; its page swaps rows by
id, as htmx's out-of-band swap does. No signature check, no database, no Django, no channel
layer: what is left is the transport a webhook-to-screen path cannot do without, on the same
machine, under the same load. Prints ``{"http": port, "ws": port}`` when it listens.
"""

from __future__ import annotations

import asyncio
import html
import json
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Floor</title></head>
<body data-state="connecting">
<div id="live"><table><tbody id="chats-body"></tbody></table></div>
<script>
(function () {
  var body = document.getElementById("chats-body");
  var ws = new WebSocket("ws://" + location.hostname + ":WS_PORT/");
  ws.onopen = function () { document.body.dataset.state = "open"; };
  ws.onmessage = function (event) {
    var template = document.createElement("template");
    template.innerHTML = event.data;
    Array.prototype.slice.call(template.content.children).forEach(function (el) {
      var old = el.id && document.getElementById(el.id);
      if (el.getAttribute("hx-swap-oob") === "delete") { if (old) old.remove(); return; }
      if (old) old.replaceWith(el); else body.appendChild(el);
    });
  };
})();
</script></body></html>
"""

clients: set[ServerConnection] = set()


def row(document: dict) -> str:
    entity = document.get("entity") or {}
    chat = html.escape(str(entity.get("id", "")))
    if entity.get("status") in ("closed", "missed", "ended"):
        return f'<tr id="chat-{chat}" hx-swap-oob="delete"></tr>'
    visitor = html.escape((entity.get("visitor") or {}).get("name") or "")
    status = html.escape(str(entity.get("status", "")))
    department = html.escape((entity.get("department") or {}).get("name") or "")
    attender = html.escape((entity.get("attender") or {}).get("name") or "")
    last = (entity.get("last_message_info") or {}).get("message") or {}
    text = html.escape(str(last.get("text") or "")[:160])
    return (
        f'<tr id="chat-{chat}" data-chat="{chat}" data-status="{status}" '
        f'data-visitor="{visitor}" data-department-name="{department}" '
        f'data-operator-name="{attender}" hx-swap-oob="true">'
        f'<td class="c-visitor">{visitor}</td><td class="c-operator">{attender}</td>'
        f'<td class="c-department">{department}</td><td class="c-status">{status}</td>'
        f'<td class="c-last"><span class="preview">{text}</span></td></tr>'
    )


async def websocket(connection: ServerConnection) -> None:
    clients.add(connection)
    try:
        await connection.wait_closed()
    finally:
        clients.discard(connection)


def answer(writer: asyncio.StreamWriter, status: str, body: bytes, kind: str) -> None:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    )
    writer.write(head.encode("ascii") + body)


async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, page: bytes) -> None:
    try:
        while True:
            request = await reader.readline()
            if not request:
                return
            method = request.decode("latin-1").split(" ")[0]
            headers = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length") or 0))
            if method == "POST":
                broadcast(clients, row(json.loads(body)))
                answer(writer, "200 OK", b'{"ok":true}', "application/json")
            else:
                answer(writer, "200 OK", page, "text/html; charset=utf-8")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        return
    finally:
        writer.close()


async def main() -> None:
    async with serve(websocket, "127.0.0.1", 0, compression=None, ping_interval=None) as ws:
        ws_port = next(iter(ws.sockets)).getsockname()[1]
        page = PAGE.replace("WS_PORT", str(ws_port)).encode("utf-8")
        server = await asyncio.start_server(
            lambda r, w: http(r, w, page), "127.0.0.1", 0, backlog=512
        )
        http_port = server.sockets[0].getsockname()[1]
        print(json.dumps({"http": http_port, "ws": ws_port}), flush=True)
        async with server:
            await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
