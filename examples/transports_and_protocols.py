"""asyncio's transports and protocols, run on mioloop.EventLoop and on asyncio's own loop: for the
chapter "Transports and protocols" (book/src/real-loop/transports-and-protocols.md).

A tracing loop mixin writes down every reader and writer a transport adds or removes, with the Python
function that asked, and logging protocols write their callbacks into the same timeline; the other
sections connect with Happy Eyeballs, exchange datagrams, send a file through a transport and receive
into one reused buffer. Each demonstration runs on both loops and says whether they agreed.

Run it on its own with `python examples/transports_and_protocols.py` (loopback sockets only).
"""

import asyncio
import functools
import os
import socket
import sys
import tempfile
import tracemalloc

import mioloop


# ANCHOR: tracing
class Tracing:
    """Writes each change to a reader or a writer into a timeline, with the function that made it."""

    def __init__(self):
        self.timeline = []  # the protocols below write into it too
        super().__init__()

    def _note(self, change, fd, callback=None):
        caller = sys._getframe(2).f_code.co_qualname
        if caller.startswith("BaseSelectorEventLoop.") and not caller.split(".")[1].startswith("_"):
            return  # asyncio's public add_writer and others call these: one change, noted once
        self.timeline.append((f"loop.{change}", fd, callback and callback.__name__, caller))

    def _add_reader(self, fd, callback, *args):
        self._note("_add_reader", fd, callback)
        return super()._add_reader(fd, callback, *args)

    def _add_writer(self, fd, callback, *args):
        self._note("_add_writer", fd, callback)
        return super()._add_writer(fd, callback, *args)

    def _remove_reader(self, fd):
        self._note("_remove_reader", fd)
        return super()._remove_reader(fd)

    def _remove_writer(self, fd):
        self._note("_remove_writer", fd)
        return super()._remove_writer(fd)

class TracingMio(Tracing, mioloop.EventLoop):
    pass

class TracingAsyncio(Tracing, asyncio.SelectorEventLoop):
    pass

def lines(timeline, names):
    """The timeline as lines of text, with each descriptor replaced by the name of its socket."""
    text = []
    for entry in timeline:
        if isinstance(entry, tuple):
            change, fd, callback, caller = entry
            arguments = ", ".join(filter(None, [names.get(fd, "?"), callback]))
            entry = f"  {change}({arguments})  <- {caller}"
        text.append(entry)
    return text

def run_traced(loop_class, main):
    """Runs main() on a tracing loop; main returns the names of its descriptors."""
    with asyncio.Runner(loop_factory=loop_class) as runner:
        runner.get_loop().timeline.clear()  # asyncio's loop registers a reader of its own in __init__
        names = runner.run(main())
        return lines(runner.get_loop().timeline, names)

class Logged(asyncio.Protocol):
    """A protocol that writes each callback it gets into a timeline; `lost` resolves on connection_lost."""

    def __init__(self, side, timeline):
        self.side, self.timeline = side, timeline
        self.lost = asyncio.get_running_loop().create_future()

    def note(self, event):
        self.timeline.append(f"{self.side}: {event}")

    def connection_made(self, transport):
        self.transport = transport
        self.note("connection_made")

    def data_received(self, data):
        self.note(f"data_received({data!r})")

    def eof_received(self):
        self.note("eof_received")

    def connection_lost(self, exc):
        self.note(f"connection_lost({exc})")
        self.lost.set_result(None)
# ANCHOR_END: tracing


# ANCHOR: conversation
KiB = 1024
MiB = 1024 * KiB
ANSWER = bytes(MiB)

class Answering(Logged):
    def connection_made(self, transport):
        self.sock = transport.get_extra_info("socket")
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * KiB)
        self.fd = self.sock.fileno()
        super().connection_made(transport)

    def data_received(self, data):
        super().data_received(data)
        self.transport.write(ANSWER)
        self.note("write() returned")

class Asking(Logged):
    received = 0

    def data_received(self, data):
        if not self.received:
            self.note("data_received(...), the first of several")
        self.received += len(data)
        if self.received == len(ANSWER):
            self.note("the whole answer is in: close()")
            self.transport.close()

async def conversation():
    loop = asyncio.get_running_loop()
    accepted = []

    def answering():
        accepted.append(Answering("server", loop.timeline))
        return accepted[-1]

    server = await loop.create_server(answering, "127.0.0.1", 0)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * KiB)
    sock.connect(server.sockets[0].getsockname())  # the kernel completes the handshake; no accept yet
    names = {server.sockets[0].fileno(): "listener", sock.fileno(): "client"}
    transport, asking = await loop.create_connection(lambda: Asking("client", loop.timeline), sock=sock)
    transport.write(b"hello")
    await asking.lost
    await accepted[0].lost
    names[accepted[0].fd] = "server"
    server.close()
    return names
# ANCHOR_END: conversation


# ANCHOR: happy_eyeballs
def unresponsive_listener():
    """A listener with a full backlog: a connect to it stays in progress."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = [socket.socket() for _ in range(8)]
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
    return listener, fillers

async def connect_to_two(**options):
    loop = asyncio.get_running_loop()
    stuck, fillers = unresponsive_listener()
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    names = {stuck.getsockname(): "stuck", server.sockets[0].getsockname(): "answering"}
    attempts = []

    async def getaddrinfo(host, port, *, family=0, type=0, proto=0, flags=0):
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address) for address in names]

    async def sock_connect(sock, address, connect=loop.sock_connect):
        attempts.append(f"connect to {names[address]}")
        try:
            await connect(sock, address)
        except asyncio.CancelledError:
            attempts.append(f"{names[address]}: cancelled")
            raise
        attempts.append(f"{names[address]}: connected")

    loop.getaddrinfo, loop.sock_connect = getaddrinfo, sock_connect
    try:
        connecting = loop.create_connection(asyncio.Protocol, "two-addresses.test", 80, **options)
        transport, _ = await asyncio.wait_for(connecting, timeout=0.5)
        attempts.append(f"a transport to {names[transport.get_extra_info('peername')]}")
        transport.close()
    except TimeoutError:
        attempts.append("gave up after 0.5 s")
    finally:
        server.close()
        for sock in (stuck, *fillers):
            sock.close()
    return attempts
# ANCHOR_END: happy_eyeballs


# ANCHOR: datagrams
async def datagrams():
    loop = asyncio.get_running_loop()
    server_log, client_log = [], []

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            server_log.append(data)
            self.transport.sendto(data.upper(), addr)

    class Client(asyncio.DatagramProtocol):
        def __init__(self):
            self.events = asyncio.Queue()

        def connection_made(self, transport):
            client_log.append("connection_made")

        def datagram_received(self, data, addr):
            client_log.append(f"datagram_received({data!r})")
            self.events.put_nowait(data)

        def error_received(self, exc):
            client_log.append(f"error_received({type(exc).__name__})")
            self.events.put_nowait(exc)

        def connection_lost(self, exc):
            client_log.append(f"connection_lost({exc})")
            self.events.put_nowait(None)

    server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    transport, client = await loop.create_datagram_endpoint(Client, remote_addr=server.get_extra_info("sockname"))
    kind = type(transport).__name__
    for word in (b"one", b"two", b"three"):
        transport.sendto(word)  # connected: no address needed
    for _ in range(3):
        await client.events.get()
    server.close()
    await asyncio.sleep(0.01)
    transport.sendto(b"anyone there?")
    await client.events.get()
    transport.close()
    await client.events.get()
    return kind, server_log, client_log
# ANCHOR_END: datagrams


# ANCHOR: sendfile
class Collecting(asyncio.Protocol):
    def __init__(self):
        self.data = bytearray()
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data):
        self.data += data

    def connection_lost(self, exc):
        self.lost.set_result(exc)

FILE_BYTES = os.urandom(4 * MiB)

async def send_a_file(file):
    loop = asyncio.get_running_loop()
    mine, theirs = socket.socketpair()
    mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * KiB)
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, mine)
    _, collecting = await loop.connect_accepted_socket(Collecting, theirs)
    transport.write(b"header\n")
    sending = asyncio.create_task(loop.sendfile(transport, file))
    await asyncio.sleep(0)
    print("reading while the file is sent:", transport.is_reading())
    try:
        transport.write(b"in the middle")
    except RuntimeError as error:
        print("write:", error)
    sent = await sending
    print("sent:", sent, "| reading again:", transport.is_reading())
    transport.write(b"footer\n")
    transport.close()
    await collecting.lost
    return bytes(collecting.data)
# ANCHOR_END: sendfile


# ANCHOR: buffered
class OneBuffer(asyncio.BufferedProtocol):
    """Receives into one buffer, allocated once; counts the bytes."""

    def __init__(self):
        self.view = memoryview(bytearray(256 * KiB))
        self.given, self.hints, self.received = [], set(), 0
        self.done = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint):
        self.hints.add(sizehint)
        self.given.append(self.view)
        return self.view

    def buffer_updated(self, nbytes):
        self.received += nbytes

    def eof_received(self):
        self.done.set_result(self.received)

class NewBytes(asyncio.Protocol):
    """Receives a new bytes object per read; counts the bytes."""

    def __init__(self):
        self.reads, self.received = 0, 0
        self.done = asyncio.get_running_loop().create_future()

    def data_received(self, data):
        self.reads += 1
        self.received += len(data)

    def eof_received(self):
        self.done.set_result(self.received)

async def receive_with(protocol_class):
    loop = asyncio.get_running_loop()
    sender, theirs = socket.socketpair()
    sender.setblocking(False)
    transport, protocol = await loop.connect_accepted_socket(protocol_class, theirs)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    await loop.sock_sendall(sender, FILE_BYTES)
    sender.shutdown(socket.SHUT_WR)
    received = await protocol.done
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    transport.close()
    sender.close()
    return protocol, received, peak
# ANCHOR_END: buffered


def on_both(coroutine_function, *args):
    """Runs coroutine_function(*args) on mioloop, then on asyncio's loop; returns both results."""
    results = []
    for new_loop in (mioloop.new_event_loop, asyncio.new_event_loop):
        with asyncio.Runner(loop_factory=new_loop) as runner:
            results.append(runner.run(coroutine_function(*args)))
    return results


def main():
    on_mioloop = run_traced(TracingMio, conversation)
    print("who calls whom, on mioloop:", *on_mioloop, sep="\n")
    on_asyncio = run_traced(TracingAsyncio, conversation)
    # The one expected difference: mioloop's reader is the native `read_ready` (transport.rs).
    print("on asyncio's loop, the lines that differ:", *(theirs for ours, theirs in zip(on_mioloop, on_asyncio) if ours != theirs), sep="\n")

    for options in ({}, {"happy_eyeballs_delay": 0.05}):
        mine, theirs = on_both(functools.partial(connect_to_two, **options))
        print(options or "one address after another:", ", ".join(mine), "| the same on asyncio's loop:", mine == theirs)

    mine, theirs = on_both(datagrams)
    print("datagrams:", *mine, "| the same on asyncio's loop:", mine == theirs)

    with tempfile.TemporaryFile() as file:
        file.write(FILE_BYTES)
        for new_loop in (mioloop.new_event_loop, asyncio.new_event_loop):
            file.seek(0)
            with asyncio.Runner(loop_factory=new_loop) as runner:
                received = runner.run(send_a_file(file))
            print(f"{new_loop.__module__}: received header, file, footer in order:",
                  received == b"header\n" + FILE_BYTES + b"footer\n")

    for new_loop in (mioloop.new_event_loop, asyncio.new_event_loop):
        with asyncio.Runner(loop_factory=new_loop) as runner:
            buffered, _, buffered_peak = runner.run(receive_with(OneBuffer))
            _, _, plain_peak = runner.run(receive_with(NewBytes))
        print(f"{new_loop.__module__}: one buffer for {len(buffered.given)} reads:",
              all(view is buffered.view for view in buffered.given),
              f"| peak allocation while receiving: Protocol {plain_peak // 1024} KiB,",
              f"BufferedProtocol {buffered_peak // 1024} KiB")


if __name__ == "__main__":
    main()
