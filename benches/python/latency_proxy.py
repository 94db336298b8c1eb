"""A TCP proxy on 127.0.0.1 that delays the first byte of each response by a
fixed time: object-store latency for benchmarks against a local S3 server
(`tc netem` is not available here).

    python3 latency_proxy.py LISTEN_PORT UPSTREAM_PORT DELAY_MS

Per connection, the first bytes the server sends after each request from
the client wait DELAY_MS (HTTP/1.1 keep-alive: one request at a time per
connection); the rest of the response streams as it comes. Prints
`listening` when ready; stops when killed.
"""
import asyncio
import sys


async def pump_requests(reader, writer, state):
    while data := await reader.read(65536):
        state["waiting"] = True
        writer.write(data)
        await writer.drain()
    writer.close()


async def pump_responses(reader, writer, state, delay):
    while data := await reader.read(262144):
        if state["waiting"]:
            state["waiting"] = False
            await asyncio.sleep(delay)
        writer.write(data)
        await writer.drain()
    writer.close()


async def main():
    listen, upstream, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000

    async def handle(client_r, client_w):
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            client_w.close()
            return
        state = {"waiting": False}
        await asyncio.gather(
            pump_requests(client_r, up_w, state),
            pump_responses(up_r, client_w, state, delay),
            return_exceptions=True,
        )

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
