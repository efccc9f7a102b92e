"""A complete small event loop, serving several TCP echo clients at once on one thread.

The chapter "How an event loop works" includes it part by part. Run it on its own with
`python examples/echo_loop.py` (it uses mioloop.selectors when installed, else the standard library's).
"""

# ANCHOR: imports
import collections
import selectors
import socket
import threading

try:
    from mioloop.selectors import MioSelector as Selector
except ImportError:
    from selectors import DefaultSelector as Selector
# ANCHOR_END: imports


# ANCHOR: requests
class Wait:
    """A request: resume me when `sock` is ready for `events`."""

    def __init__(self, sock, events):
        self.sock, self.events = sock, events

    def __await__(self):
        yield self  # travels up through every `await` to the loop's `send(None)`


async def accept(listener):
    await Wait(listener, selectors.EVENT_READ)
    return listener.accept()


async def recv(sock, size):
    await Wait(sock, selectors.EVENT_READ)
    return sock.recv(size)


async def sendall(sock, data):
    while data:
        await Wait(sock, selectors.EVENT_WRITE)
        data = data[sock.send(data):]
# ANCHOR_END: requests


# ANCHOR: loop
class Loop:
    def __init__(self, selector):
        self.selector = selector
        self.ready = collections.deque()  # coroutines that can run now

    def spawn(self, coroutine):
        self.ready.append(coroutine)

    def step(self, coroutine):
        """Executor: run the coroutine until its next request, and file the request."""
        try:
            request = coroutine.send(None)
        except StopIteration:
            return  # finished
        self.selector.register(request.sock, request.events, data=coroutine)

    def run(self):
        while True:
            for _ in range(len(self.ready)):  # only what was ready when the turn began
                self.step(self.ready.popleft())
            if not self.ready and not self.selector.get_map():
                return  # nothing to run, nothing to wait for
            # Monitor: sleep until a request can be served (or just look, if work is waiting).
            for key, _events in self.selector.select(timeout=0 if self.ready else None):
                self.selector.unregister(key.fileobj)
                self.ready.append(key.data)
# ANCHOR_END: loop


# ANCHOR: server
async def echo(conn):
    with conn:
        while data := await recv(conn, 1024):
            await sendall(conn, data.upper())


async def serve(loop, listener, clients):
    with listener:
        for _ in range(clients):
            conn, _address = await accept(listener)
            conn.setblocking(False)
            loop.spawn(echo(conn))
# ANCHOR_END: server


# ANCHOR: clients
def client(port, name, together, replies):
    """A plain blocking client on its own thread: connect, say hello, wait for the others, say more."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        got = []
        for i, word in enumerate(["hello", "from", name]):
            if i == 1:
                together.wait()  # every client is connected at this point
            sock.sendall(word.encode())
            got.append(sock.recv(1024).decode())
        replies[name] = got


def serve_clients(names):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    loop = Loop(Selector())
    loop.spawn(serve(loop, listener, clients=len(names)))
    together, replies = threading.Barrier(len(names)), {}
    threads = [threading.Thread(target=client, args=(port, n, together, replies)) for n in names]
    for thread in threads:
        thread.start()
    loop.run()
    for thread in threads:
        thread.join()
    loop.selector.close()
    return replies
# ANCHOR_END: clients


if __name__ == "__main__":
    for name, got in sorted(serve_clients(["ada", "bob", "cy"]).items()):
        print(name, got)
