"""Many websocket clients in a process of their own: `python -m bench.clients …`.

Each client connects (with its session cookie when given), reads every message it is sent
and counts them. Prints one JSON line when every client has connected (or failed), then,
on SIGTERM or SIGINT, one JSON line with what they read, and exits. Kept apart from the bench
process so the clients' reading never holds the simulator's threads back (one GIL each).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

from websockets.asyncio.client import connect


class Client:
    def __init__(self, url: str, origin: str, cookie: str | None) -> None:
        self.url = url
        self.origin = origin
        self.cookie = cookie
        self.messages = 0
        self.bytes = 0
        self.closed: int | None = None
        self.error = ""
        self.connected = asyncio.Event()

    async def run(self) -> None:
        headers = {"Cookie": f"sessionid={self.cookie}"} if self.cookie else None
        try:
            async with connect(
                self.url,
                origin=self.origin,  # type: ignore[arg-type]
                additional_headers=headers,
                compression=None,
                max_size=None,
                ping_interval=None,
                open_timeout=120,
                close_timeout=2,
            ) as ws:
                self.connected.set()
                async for message in ws:
                    self.messages += 1
                    self.bytes += len(message)
                self.closed = ws.close_code
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"[:200]
        finally:
            self.connected.set()


async def main(args: argparse.Namespace) -> None:
    cookies: list[str | None] = [None] * args.count
    if args.cookies:
        with open(args.cookies) as handle:
            keys = [line.strip() for line in handle if line.strip()]
        cookies = [keys[i % len(keys)] for i in range(args.count)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    clients = [Client(args.url, args.origin, cookie) for cookie in cookies]
    tasks = []
    started = time.monotonic()
    # In batches: a thousand handshakes at once would measure the server's accept queue.
    for first in range(0, len(clients), args.batch):
        batch = clients[first : first + args.batch]
        tasks.extend(asyncio.create_task(client.run()) for client in batch)
        await asyncio.gather(*(client.connected.wait() for client in batch))
    failed = [client.error for client in clients if client.error]
    print(
        json.dumps(
            {
                "connected": len(clients) - len(failed),
                "failed": len(failed),
                "errors": sorted(set(failed))[:5],
                "seconds": round(time.monotonic() - started, 2),
            }
        ),
        flush=True,
    )
    await stop.wait()
    counts = [client.messages for client in clients if not client.error]
    print(
        json.dumps(
            {
                "clients": len(counts),
                "messages": sum(counts),
                "bytes": sum(client.bytes for client in clients),
                "min_per_client": min(counts, default=0),
                "max_per_client": max(counts, default=0),
                "closed_by_server": sum(1 for client in clients if client.closed is not None),
                "errors": sorted({client.error for client in clients if client.error})[:5],
            }
        ),
        flush=True,
    )
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.clients")
    parser.add_argument("--url", required=True)
    parser.add_argument("--origin", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--cookies", help="a file of session keys, one a line (reused in turn)")
    parser.add_argument("--batch", type=int, default=50)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
