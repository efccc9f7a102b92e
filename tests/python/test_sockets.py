"""The sock_* methods of mioloop.EventLoop beyond CPython's suite: the fd-reuse race of a cancelled
sock_connect (uvloop issue #645), sock_sendfile with a real file, and sock_* on both loops."""

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
