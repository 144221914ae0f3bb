#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that delays every chunk by a fixed time in each direction.

Usage: delay_proxy.py LISTEN_PORT TARGET_PORT DELAY_MS STATS_FILE

Listens on 127.0.0.1:LISTEN_PORT and forwards to 127.0.0.1:TARGET_PORT; only loopback
addresses are ever used. Each chunk is held DELAY_MS after it arrives, independently of the
chunks before it, so pipelined messages stay pipelined and a round trip costs 2 * DELAY_MS.

When a connection closes, one JSON line is appended to STATS_FILE:
  {"c2s_chunks": .., "s2c_chunks": .., "flights": .., "c2s_bytes": .., "s2c_bytes": ..}
`flights` counts the client->server sends that follow something from the server (or open the
connection): each one is a round trip the client waited for.
Prints "ready" on stdout once listening.
"""

import asyncio
import json
import sys

LOOPBACK = "127.0.0.1"


async def main() -> None:
    listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    delay = float(sys.argv[3]) / 1000.0
    stats_file = sys.argv[4]
    loop = asyncio.get_running_loop()

    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            s_reader, s_writer = await asyncio.open_connection(LOOPBACK, target_port)
        except OSError:
            c_writer.close()
            return
        stats = {"c2s_chunks": 0, "s2c_chunks": 0, "flights": 0, "c2s_bytes": 0, "s2c_bytes": 0}
        last = {"dir": "s2c"}

        async def pipe(reader, writer, direction):
            queue: asyncio.Queue = asyncio.Queue()

            async def read():
                while True:
                    try:
                        data = await reader.read(65536)
                    except OSError:
                        data = b""
                    if data:
                        stats[direction + "_chunks"] += 1
                        stats[direction + "_bytes"] += len(data)
                        if direction == "c2s" and last["dir"] == "s2c":
                            stats["flights"] += 1
                        last["dir"] = direction
                    await queue.put((loop.time() + delay, data))
                    if not data:
                        return

            async def write():
                while True:
                    due, data = await queue.get()
                    wait = due - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if not data:
                        try:
                            writer.write_eof()
                        except OSError:
                            pass
                        return
                    try:
                        writer.write(data)
                        await writer.drain()
                    except OSError:
                        return

            await asyncio.gather(read(), write())

        await asyncio.gather(
            pipe(c_reader, s_writer, "c2s"), pipe(s_reader, c_writer, "s2c"),
            return_exceptions=True,
        )
        for w in (c_writer, s_writer):
            w.close()
        with open(stats_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(stats) + "\n")

    server = await asyncio.start_server(handle, LOOPBACK, listen_port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
