"""Async iteration and async context managers, on the toy loop of toyloop.timers, which needs no change.

Chapter: "Async iteration and context managers". Run the demo from `examples/` with `python -m toyloop.aiter`.
"""

import contextlib

from toyloop.aiosocket import listen, open_connection, reverse_server
from toyloop.future import Future
from toyloop.loop import get_running_loop
from toyloop.timers import sleep


# ANCHOR: sleep_until
async def sleep_until(deadline):
    """Sleep until the loop's clock reads `deadline`: a schedule of deadlines does not drift."""
    await sleep(deadline - get_running_loop().time())
# ANCHOR_END: sleep_until


# ---- An async iterator, written as a class

# ANCHOR: ticker
class Ticker:
    """An async iterator over 0, 1, ..., count - 1; number n arrives (n + 1) * interval after the first ask."""

    def __init__(self, count, interval):
        self.count, self.interval = count, interval
        self.number = 0
        self.start = None  # the loop's time at the first __anext__

    def __aiter__(self):
        return self  # plain method: `async for` calls it once, without awaiting

    async def __anext__(self):  # a coroutine: `async for` awaits it for every item
        if self.number == self.count:
            raise StopAsyncIteration  # the async spelling of StopIteration
        if self.start is None:
            self.start = get_running_loop().time()
        self.number += 1
        await sleep_until(self.start + self.number * self.interval)
        return self.number - 1
# ANCHOR_END: ticker


# ---- The same iterator as an async generator

# ANCHOR: ticks
async def ticks(count, interval):
    """Ticker as an async generator: `async def` with `yield` in it."""
    start = get_running_loop().time()
    for number in range(count):
        await sleep_until(start + (number + 1) * interval)
        yield number
# ANCHOR_END: ticks


# ---- An async context manager, written as a class

# ANCHOR: server
class ReverseServer:
    """The reversing server of the chapter "Sockets", listening for the duration of an `async with` block."""

    def __init__(self, connections):
        self.connections = connections  # how many clients to serve before the server task ends

    async def __aenter__(self):
        self.listener = listen()
        self.address = self.listener.sock.getsockname()
        self.served = Future()  # done once the server task has accepted every connection
        get_running_loop().add_task(self._serve())
        return self  # what `as` binds

    async def _serve(self):
        await reverse_server(self.listener, self.connections)
        self.served.set_result(self.connections)

    async def __aexit__(self, exc_type, exc, traceback):
        await self.served  # an exit that waits: let the server finish before its socket closes
        self.listener.close()
        return False  # do not swallow an exception from the block
# ANCHOR_END: server


# ---- The same idea with contextlib

# ANCHOR: connected
@contextlib.asynccontextmanager
async def connected(address):
    """An open connection to `address` for the duration of an `async with` block, closed however it ends."""
    conn = await open_connection(address)  # before the yield: __aenter__
    try:
        yield conn  # the value `as` binds; the block runs here
    finally:
        conn.close()  # after the yield: __aexit__, exception or not
# ANCHOR_END: connected


if __name__ == "__main__":
    import socket

    from toyloop.aiosocket import read_to_end
    from toyloop.timers import TimerLoop

    async def main():
        print([number async for number in Ticker(3, 0.01)], [number async for number in ticks(3, 0.01)])
        async with ReverseServer(connections=2) as server:
            for message in [b"async with", b"async for"]:
                async with connected(server.address) as conn:
                    await conn.sendall(message)
                    conn.sock.shutdown(socket.SHUT_WR)
                    print(message, "->", await read_to_end(conn))

    loop = TimerLoop()
    loop.run_task(main())
    loop.close()
