"""Sockets: the loop gains a selector, and a socket wrapper whose operations suspend until it is ready.

Chapter: "Sockets". Run the demo from `examples/` with `python -m toyloop.aiosocket`
(it uses mioloop.selectors when installed, else the standard library's selectors).
"""

import errno
import os
import selectors
import socket

from toyloop.loop import Loop, get_running_loop

try:
    from mioloop.selectors import MioSelector as Selector
except ImportError:
    from selectors import DefaultSelector as Selector


# ---- The request a task yields

# ANCHOR: wait_for
class WaitFor:
    """A request to the loop: resume me when `sock` is ready for `events` (read or write)."""

    def __init__(self, sock, events):
        self.sock, self.events = sock, events

    def __await__(self):
        yield self  # travels up through every await to the loop's send(None)
# ANCHOR_END: wait_for


# ---- The loop with a selector

# ANCHOR: loop
class SelectorLoop(Loop):
    """A Loop that parks tasks waiting for a socket in a selector, filed under the socket."""

    def __init__(self):
        super().__init__()
        self.selector = Selector()

    def park(self, task, request):
        if isinstance(request, WaitFor):
            self.selector.register(request.sock, request.events, data=task)
        else:
            super().park(task, request)

    def has_work(self):
        return bool(self.ready) or len(self.selector.get_map()) > 0

    def run_once(self):
        self.poll(self.timeout())  # first collect the tasks whose sockets are ready...
        super().run_once()  # ...then run this turn's tasks, those included

    def timeout(self):
        """How long the selector may sleep: not at all while a task can run, else until a socket is ready."""
        return 0 if self.ready else None

    def poll(self, timeout):
        for key, _events in self.selector.select(timeout):
            self.selector.unregister(key.fileobj)
            self.ready.append(key.data)

    def close(self):
        self.selector.close()
# ANCHOR_END: loop


# ANCHOR: log_timeouts
class LogTimeouts:
    """Mix into a loop class to record the timeout of every select(); the book's demos read it."""

    def __init__(self):
        super().__init__()
        self.timeouts = []

    def poll(self, timeout):
        self.timeouts.append(timeout)
        super().poll(timeout)
# ANCHOR_END: log_timeouts


# ---- A socket for tasks

# ANCHOR: aiosocket
class AIOSocket:
    """A non-blocking socket; each operation suspends the calling task until it cannot block."""

    def __init__(self, sock):
        sock.setblocking(False)
        self.sock = sock

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    async def _retry(self, events, operation, *args):
        """Try `operation`; each time it would block, wait until the socket is ready and try again."""
        while True:
            try:
                return operation(*args)
            except BlockingIOError:
                await WaitFor(self.sock, events)

    async def accept(self):
        conn, address = await self._retry(selectors.EVENT_READ, self.sock.accept)
        return AIOSocket(conn), address

    async def recv(self, size):
        return await self._retry(selectors.EVENT_READ, self.sock.recv, size)

    async def send(self, data):
        return await self._retry(selectors.EVENT_WRITE, self.sock.send, data)

    async def sendall(self, data):
        data = memoryview(data)
        while data:
            data = data[await self.send(data):]

    async def connect(self, address):
        error = self.sock.connect_ex(address)
        if error == errno.EINPROGRESS:  # the handshake has started: writable means it has finished
            await WaitFor(self.sock, selectors.EVENT_WRITE)
            error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise OSError(error, os.strerror(error))  # OSError picks the subclass, e.g. ConnectionRefusedError
# ANCHOR_END: aiosocket


# ANCHOR: helpers
def listen(host="127.0.0.1", port=0):
    """A listening AIOSocket; port 0 lets the kernel pick a free one."""
    return AIOSocket(socket.create_server((host, port)))


async def open_connection(address):
    conn = AIOSocket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    try:
        await conn.connect(address)
    except OSError:
        conn.close()
        raise
    return conn
# ANCHOR_END: helpers


# ---- The reversing server and its client

# ANCHOR: reverse
async def read_to_end(conn):
    data = b""
    while chunk := await conn.recv(1024):  # b"" means the other end has shut down its side
        data += chunk
    return data


async def reverse_server(listener, connections):
    """Accept `connections` clients; answer each with its message reversed, in a task of its own."""
    for _ in range(connections):
        conn, _address = await listener.accept()
        get_running_loop().add_task(reverse_one(conn))


async def reverse_one(conn):
    with conn:
        message = await read_to_end(conn)
        await conn.sendall(message[::-1])


async def ask(address, message):
    """One client: connect, send `message`, say we are done writing, read the answer to the end."""
    with await open_connection(address) as conn:
        await conn.sendall(message)
        conn.sock.shutdown(socket.SHUT_WR)
        return await read_to_end(conn)
# ANCHOR_END: reverse


if __name__ == "__main__":
    messages = [b"hello", b"event loop"]

    async def client(address):
        for message in messages:
            print(message, "->", await ask(address, message))

    loop = SelectorLoop()
    with listen() as listener:
        loop.add_task(reverse_server(listener, len(messages)))
        loop.run_task(client(listener.sock.getsockname()))
    loop.close()
