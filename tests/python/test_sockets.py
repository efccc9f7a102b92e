"""The sock_* methods of mioloop.EventLoop beyond CPython's suite: the fd-reuse race of a cancelled
sock_connect (uvloop issue #645), sock_sendfile with a real file, the edges of the native sock_recv
and sock_sendall (crates/pymodule/src/sock.rs), and sock_* on both loops."""

import asyncio
import os
import socket
import tempfile

import pytest

import mioloop


def unresponsive_listener():
    """A listener whose backlog is full: a connect to it stays in progress (Linux drops the SYN)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(listener.getsockname())
        except BlockingIOError:
            pass
        fillers.append(filler)
    return listener, fillers


def test_a_cancelled_sock_connect_does_not_remove_a_new_sockets_writer():
    """Cancel sock_connect, close its socket, and register a writer on a new socket that gets the
    same fd number before the cancelled connect's clean-up runs: the new writer must fire.

    Stock asyncio fails this: its selector still maps the number to the closed socket's key, so
    the new writer only replaces the key's data and is never registered with epoll (the kernel
    dropped the old registration on close). mioloop's selector registers it anew."""

    async def main():
        loop = asyncio.get_running_loop()
        listener, fillers = unresponsive_listener()
        try:
            sock = socket.socket()
            sock.setblocking(False)
            connecting = asyncio.ensure_future(loop.sock_connect(sock, listener.getsockname()))
            await asyncio.sleep(0.05)
            assert not connecting.done(), "the connect completed: the backlog trick did not hold"
            fd = sock.fileno()
            connecting.cancel()  # its clean-up is scheduled, not run yet
            sock.close()
            pair = socket.socketpair()  # the lowest free numbers: the old one among them
            reused = [end for end in pair if end.fileno() == fd]
            if not reused:
                pytest.skip("the new socket did not get the old number")
            writable = loop.create_future()
            loop.add_writer(fd, lambda: writable.done() or writable.set_result(True))
            with pytest.raises(asyncio.CancelledError):
                await connecting
            result = await asyncio.wait_for(writable, 5)
            loop.remove_writer(fd)
            for end in pair:
                end.close()
            return result
        finally:
            listener.close()
            for filler in fillers:
                filler.close()

    with asyncio.Runner(loop_factory=mioloop.new_event_loop) as runner:
        assert runner.run(main()) is True


def test_sock_sendfile_sends_a_real_file(run):
    payload = os.urandom(3 << 20) + b"end"

    async def main():
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        left.setblocking(False)
        right.setblocking(False)
        with tempfile.TemporaryFile() as file:
            file.write(payload)
            file.seek(0)

            async def receive():
                chunks = []
                while sum(map(len, chunks)) < len(payload) - 100:
                    chunks.append(await loop.sock_recv(right, 1 << 16))
                return b"".join(chunks)

            received = asyncio.ensure_future(receive())
            sent = await loop.sock_sendfile(left, file, offset=100)
            data = await received
        left.close()
        right.close()
        return sent, data

    sent, data = run(main)
    assert sent == len(payload) - 100
    assert data == payload[100:]


def test_sock_methods_on_a_transport_owned_socket_are_refused():
    """Once a call would block, asyncio's rule applies: a socket a transport owns is not for sock_*."""
    loop = mioloop.new_event_loop()
    sock, other = socket.socketpair()
    sock.setblocking(False)
    try:
        owner = type("FakeTransport", (), {"is_closing": lambda self: False})()  # kept alive: a weak map
        loop._transports[sock.fileno()] = owner
        with pytest.raises(RuntimeError, match="is used by transport"):
            loop.run_until_complete(loop.sock_recv(sock, 1))
    finally:
        sock.close()
        other.close()
        loop.close()


def test_a_transports_descriptor_is_refused_by_the_public_reader_and_writer_methods():
    async def main():
        loop = asyncio.get_running_loop()
        mine, theirs = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, mine)
        try:
            for method in (loop.add_reader, loop.add_writer):
                with pytest.raises(RuntimeError, match="is used by transport"):
                    method(mine.fileno(), print)
            for method in (loop.remove_reader, loop.remove_writer):
                with pytest.raises(RuntimeError, match="is used by transport"):
                    method(mine.fileno())
            other, spare = socket.socketpair()
            assert loop.add_reader(other.fileno(), print) is None  # as asyncio's
            assert loop.remove_reader(other.fileno()) is True
            other.close()
            spare.close()
        finally:
            transport.close()
            theirs.close()
            await asyncio.sleep(0)

    with asyncio.Runner(loop_factory=mioloop.new_event_loop) as runner:
        runner.run(main())


def test_sock_recv_and_sendall_refuse_what_asyncio_refuses(run):
    async def main():
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        left.setblocking(False)
        errors = []
        for call in (lambda: loop.sock_recv(left, -1), lambda: loop.sock_sendall(left, "text"),
                     lambda: loop.sock_sendall(left, memoryview(bytes(8))[::2])):
            try:
                await call()
            except Exception as error:
                errors.append(type(error).__name__)
        left.close()
        right.close()
        try:
            await loop.sock_recv(left, 1)  # closed: fileno() is -1, recv fails with EBADF
        except Exception as error:
            errors.append(type(error).__name__)
        return errors

    assert run(main) == ["ValueError", "TypeError", "BufferError", "OSError"]


def test_sock_recv_and_sendall_check_the_socket_as_asyncio_does(run):
    """An SSL socket is refused; in debug mode, so is a blocking one; same exceptions and messages."""
    import ssl

    async def main():
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        wrapped = context.wrap_socket(socket.socket(), server_hostname="localhost", do_handshake_on_connect=False)
        errors = []
        for debug, sock in ((False, wrapped), (True, left)):
            loop.set_debug(debug)
            for call in (lambda: loop.sock_recv(sock, 1), lambda: loop.sock_sendall(sock, b"x")):
                try:
                    await call()
                except Exception as error:
                    errors.append(f"{type(error).__name__}: {error}")
        loop.set_debug(False)
        for sock in (left, right, wrapped):
            sock.close()
        return errors

    assert run(main) == ["TypeError: Socket cannot be of type SSLSocket"] * 2 + ["ValueError: the socket must be non-blocking"] * 2


def test_sock_recv_larger_than_the_loops_buffer_and_a_waiting_sendall(run):
    """A receive of more than 256 KiB (a buffer of its own, not the loop's), and a sendall that
    waits for room several times, every byte in order."""
    payload = os.urandom(5 << 20)

    async def main():
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        left.setblocking(False)
        right.setblocking(False)
        left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
        sending = asyncio.ensure_future(loop.sock_sendall(left, payload))
        await asyncio.sleep(0.01)
        waited = not sending.done()
        received = bytearray()
        while len(received) < len(payload):
            chunk = await loop.sock_recv(right, 1 << 20)
            assert 0 < len(chunk) <= 1 << 20
            received += chunk
        await sending
        left.close()
        right.close()
        return waited, bytes(received) == payload

    assert run(main) == (True, True)


def test_cancelled_sock_recv_and_sendall_leave_no_watcher_behind(run):
    async def main():
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        left.setblocking(False)
        right.setblocking(False)
        left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 << 10)
        quiet, silent_peer = socket.socketpair()  # nothing ever arrives on `quiet`
        quiet.setblocking(False)
        receiving = asyncio.ensure_future(loop.sock_recv(quiet, 10))
        sending = asyncio.ensure_future(loop.sock_sendall(left, bytes(4 << 20)))
        await asyncio.sleep(0.01)
        receiving.cancel()
        sending.cancel()
        await asyncio.gather(receiving, sending, return_exceptions=True)
        await asyncio.sleep(0)  # the clean-up callbacks run on the next turn
        watched = [sock.fileno() for sock in (left, quiet) if _watched(loop, sock)]
        # The socket still works: a new sock_recv gets what a plain send wrote.
        right.close()
        other, right = socket.socketpair()
        other.setblocking(False)
        right.send(b"hello")
        data = await loop.sock_recv(other, 10)
        for sock in (left, right, other, quiet, silent_peer):
            sock.close()
        return receiving.cancelled(), sending.cancelled(), watched, data

    assert run(main) == (True, True, [], b"hello")


def _watched(loop, sock):
    try:
        loop._selector.get_key(sock)
        return True
    except KeyError:
        return False


def test_sock_sendall_sends_the_bytes_it_was_given():
    """mioloop copies what the first send did not take, so a bytearray changed while the call
    waits does not change what arrives (asyncio sends through a memoryview of the caller's)."""

    async def main():
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        left.setblocking(False)
        right.setblocking(False)
        left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 << 10)
        data = bytearray(b"a" * (1 << 20))
        sending = asyncio.ensure_future(loop.sock_sendall(left, data))
        await asyncio.sleep(0.01)
        assert not sending.done()
        data[:] = b"b" * len(data)
        received = bytearray()
        while len(received) < len(data):
            received += await loop.sock_recv(right, 1 << 16)
        await sending
        left.close()
        right.close()
        return set(received)

    with asyncio.Runner(loop_factory=mioloop.new_event_loop) as runner:
        assert runner.run(main()) == {ord("a")}


def test_sock_recv_on_sockets_that_reuse_a_closed_sockets_number(run):
    """Each socket is closed after its sock_recv, while the loop still holds its registration
    (parked until the loop sleeps); the next socket gets the same number, and is heard."""

    async def main():
        loop = asyncio.get_running_loop()
        numbers, received = set(), []
        for i in range(5):
            mine, theirs = socket.socketpair()
            mine.setblocking(False)
            numbers.add(mine.fileno())
            loop.call_soon(theirs.send, b"%d" % i)
            received.append(await asyncio.wait_for(loop.sock_recv(mine, 16), 5))
            mine.close()
            theirs.close()
        return len(numbers), received

    assert run(main) == (1, [b"0", b"1", b"2", b"3", b"4"])


SIZES_UP_AND_DOWN = [10, 20_000, 70_000, 65_536, 65_536, 100_000, 1_000, 130_000, 300_000, 5, 40_000, 200_000, 1]


def test_reads_of_sizes_up_and_down_arrive_whole_as_bytes(run):
    """Messages whose sizes rise and fall across the loop's two ways of reading (into its buffer
    and copied, or straight into the bytes: transport.rs, `recv_bytes`), each sent once the last
    has been read: a Protocol and sock_recv both get bytes, every byte in order, and a read fits in
    what was asked for."""
    messages = [os.urandom(size) for size in SIZES_UP_AND_DOWN]

    class Collect(asyncio.Protocol):
        def connection_made(self, transport):
            self.chunks, self.more = [], asyncio.Event()

        def data_received(self, data):
            self.chunks.append(data)
            self.more.set()

    async def read_with_protocol(loop, sender, collect):
        for message in messages:
            await loop.sock_sendall(sender, message)
            while sum(map(len, collect.chunks)) < len(message):
                collect.more.clear()
                await collect.more.wait()
            chunks, collect.chunks = collect.chunks, []
            yield chunks

    async def read_with_sock_recv(loop, sender, receiver):
        for message in messages:
            sending = asyncio.ensure_future(loop.sock_sendall(sender, message))
            chunks = []
            while sum(map(len, chunks)) < len(message):
                chunks.append(await loop.sock_recv(receiver, 256 << 10))
            await sending
            yield chunks

    async def main():
        loop = asyncio.get_running_loop()
        results = []
        for use_protocol in (True, False):
            sender, receiver = socket.socketpair()
            sender.setblocking(False)
            receiver.setblocking(False)
            if use_protocol:
                transport, collect = await loop.connect_accepted_socket(Collect, receiver)
                reads = read_with_protocol(loop, sender, collect)
            else:
                reads = read_with_sock_recv(loop, sender, receiver)
            async for chunks in reads:
                assert all(type(chunk) is bytes and 0 < len(chunk) <= 256 << 10 for chunk in chunks)
                results.append(b"".join(chunks))
            if use_protocol:
                transport.close()
            else:
                receiver.close()
            sender.close()
        return results

    assert run(main) == messages * 2
