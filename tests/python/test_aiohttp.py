"""Real aiohttp, unchanged, on mioloop.EventLoop: its server and its client, HTTP and WebSocket,
over loopback, with many requests in flight at once and every byte compared."""

import asyncio

import aiohttp  # scripts/test installs it
import pytest
from aiohttp import web

import mioloop

pytestmark = pytest.mark.timeout(120)


async def serve_and_fetch():
    async def reverse(request):
        return web.Response(body=(await request.read())[::-1])

    async def shout(request):
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for message in socket:
            await socket.send_str(message.data.upper())
        return socket

    app = web.Application()
    app.router.add_post("/reverse", reverse)
    app.router.add_get("/shout", shout)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            payloads = [f"request {i} ".encode() * (1 + i * 97) for i in range(100)]

            async def post(payload):
                async with session.post(f"http://127.0.0.1:{port}/reverse", data=payload) as response:
                    return response.status, await response.read()

            answers = await asyncio.gather(*(post(payload) for payload in payloads))
            assert answers == [(200, payload[::-1]) for payload in payloads]
            async with session.ws_connect(f"http://127.0.0.1:{port}/shout") as socket:
                heard = []
                for word in ("under", "the", "await"):
                    await socket.send_str(word)
                    heard.append((await socket.receive()).data)
        return type(asyncio.get_running_loop()), heard
    finally:
        await runner.cleanup()


def test_aiohttp_server_and_client_run_on_mioloop():
    with asyncio.Runner(loop_factory=mioloop.new_event_loop) as runner:
        loop_type, heard = runner.run(serve_and_fetch())
    assert loop_type is mioloop.EventLoop
    assert heard == ["UNDER", "THE", "AWAIT"]
