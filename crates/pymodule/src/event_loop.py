"""The Python half of mioloop.EventLoop (the native half is crates/pymodule/src/event_loop.rs).

Executed once when the `mioloop` module is created, with `_EventLoopCore` in its globals.
asyncio's BaseEventLoop is reused on purpose for what runs once per program (run_forever,
run_until_complete, task factories, exception handlers, debug mode, executors); the native base
class overrides what runs once per callback or per task. asyncio's sock_* coroutines, transports,
servers, SSL, pipes, subprocesses and signal handling are reused too, over the native readers and
writers (Part VI starts there; its benchmarks say which of them move into Rust next).
"""

import asyncio
import os
import selectors
import sys
import warnings
import weakref
from asyncio import base_events, selector_events, unix_events


class EventLoop(_EventLoopCore, base_events.BaseEventLoop):  # noqa: F821 (provided by the module)
    """An asyncio event loop whose ready queue, timers, I/O waits and handles live in Rust."""

    def __init__(self):
        base_events.BaseEventLoop.__init__(self)
        # fd -> transport, so that sock_* refuses a socket a transport owns (asyncio's rule).
        self._transports = weakref.WeakValueDictionary()
        # Signals: asyncio's Unix design, a socket pair made on the first add_signal_handler;
        # signal.set_wakeup_fd writes each signal's number into it, and a reader dispatches them.
        self._signal_handlers = {}
        self._ssock = self._csock = None
        self._internal_fds = 0
        # Unix server socket -> inode of its file, for create_unix_server(cleanup_socket=True) (3.13+).
        self._unix_server_sockets = {}

    def _report_slow_callback(self, description, seconds):
        """Debug mode: asyncio's warning for a callback that held the loop too long."""
        if seconds >= self.slow_callback_duration:
            base_events.logger.warning("Executing %s took %.3f seconds", description, seconds)

    def _add_callback(self, handle):
        """asyncio's way in for a ready `asyncio.Handle` (a signal's): onto the native ready queue."""
        if not handle._cancelled:
            self.call_soon(_run_unless_cancelled, handle)

    def add_signal_handler(self, sig, callback, *args):
        """Runs `callback(*args)` on the loop each time signal `sig` arrives (main thread only)."""
        if self._ssock is None and not self.is_closed():
            self._make_self_pipe()
        return unix_events._UnixSelectorEventLoop.add_signal_handler(self, sig, callback, *args)

    def _stop_serving(self, sock):
        """Stops accepting on a server's socket, and removes the file of a Unix server's socket if
        asyncio's `create_unix_server` recorded it (Python 3.13's `cleanup_socket`) and it is still
        the same file. asyncio's Unix loop does this in its own `_stop_serving`, through `super()`,
        which only works on its own class, so the steps are repeated here."""
        inode = self._unix_server_sockets.pop(sock, None)
        path = sock.getsockname() if inode is not None else None  # before the socket is closed
        selector_events.BaseSelectorEventLoop._stop_serving(self, sock)
        if path is None:
            return
        try:
            if os.stat(path).st_ino == inode:
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            base_events.logger.error("Unable to clean up listening UNIX socket %r: %r", path, error)

    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None):
        """The transport of a TCP or Unix stream socket (create_connection, servers, streams)."""
        return _SocketTransport(self, sock, protocol, waiter, extra, server)

    async def sock_recv(self, sock, n):
        """Receives up to `n` bytes: asyncio's checks, attempt, retry and clean-up, native
        (`sock.rs`), in a coroutine as asyncio's."""
        return await self._sock_recv_native(sock, n)

    async def sock_sendall(self, sock, data):
        """Sends all of `data`: asyncio's checks, attempt, retries and clean-up, native."""
        return await self._sock_sendall_native(sock, data)

    # The other sock_* coroutines are asyncio's own, reused on purpose: each tries the socket call at
    # once and, if it would block, waits for readiness with _add_reader/_add_writer, which are
    # native here (the core's selector over mio). Sendfile is asyncio's Unix one (os.sendfile).
    @property
    def _selector(self):
        """What asyncio's transports read through `loop._selector`: the key of an fd (None once
        the loop is closed, as asyncio's)."""
        return None if self.is_closed() else _Registrations(self)


    def close(self):
        """Closes the loop: refuses while running; drops every pending callback; idempotent."""
        base_events.BaseEventLoop.close(self)
        if self._signal_handlers and sys.is_finalizing():
            warnings.warn(f"Closing the loop {self!r} on interpreter shutdown stage, skipping signal handlers removal", ResourceWarning, source=self)
            self._signal_handlers.clear()  # as asyncio: too late to restore them
        for sig in list(self._signal_handlers):
            self.remove_signal_handler(sig)
        if self._ssock is not None:
            self._close_self_pipe()
        self._close_core()


class _SocketTransport(selector_events._SelectorSocketTransport):
    """asyncio's socket transport with its two per-message paths native (`transport.rs`): reading
    (recv, then data_received, or recv_into get_buffer() then buffer_updated) and write's
    send-at-once. The rest (connecting, closing, buffering, flow control, write_eof, set_protocol,
    sendfile, errors) is asyncio's, on the same attributes. The module sets `_read_ready` and
    `write` on this class when it is imported. What they read on every message is kept in slots,
    at offsets they read directly; asyncio's code reads and writes the same attributes, through
    the slots' descriptors."""

    __slots__ = ("_sock_fd", "_protocol", "_conn_lost", "_eof", "_empty_waiter", "_buffer")


def _run_unless_cancelled(handle):
    if not handle._cancelled:
        handle._run()


class _Registrations:
    """A selector's `get_key`, answered from the native core's readers and writers."""

    def __init__(self, loop):
        self._loop = loop

    def get_key(self, fileobj):
        fd = selectors._fileobj_to_fd(fileobj)
        reader, writer = self._loop._watchers(fd)
        events = (selectors.EVENT_READ if reader is not None else 0) | (selectors.EVENT_WRITE if writer is not None else 0)
        if not events:
            raise KeyError(f"{fileobj!r} is not registered")
        return selectors.SelectorKey(fileobj, fd, events, (reader, writer))


# asyncio's own pure-Python pieces, reused on purpose over the native readers and writers: the
# sock_* coroutines, the socket, SSL and datagram transports and the server machinery of
# selector_events, and the Unix sockets, pipes, subprocesses and sendfile of unix_events.
for _name in (
    "_make_ssl_transport", "_make_datagram_transport",
    "_start_serving", "_accept_connection", "_accept_connection2", "_sendfile_native",
    "_ensure_fd_no_transport",
    "_sock_read_done",
    "sock_recv_into", "_sock_recv_into",
    "sock_recvfrom", "_sock_recvfrom",
    "sock_recvfrom_into", "_sock_recvfrom_into",
    "sock_sendto", "_sock_sendto",
    "sock_connect", "_sock_connect", "_sock_connect_cb", "_sock_write_done",
    "sock_accept", "_sock_accept",
    "_make_self_pipe", "_close_self_pipe", "_read_from_self",
):
    setattr(EventLoop, _name, getattr(selector_events.BaseSelectorEventLoop, _name))
for _name in (
    "_sock_sendfile_native", "_sock_sendfile_native_impl", "_sock_sendfile_update_filepos", "_sock_add_cancellation_callback",
    "create_unix_connection", "create_unix_server",
    "remove_signal_handler", "_handle_signal", "_check_signal", "_process_self_data",
    "_make_read_pipe_transport", "_make_write_pipe_transport", "_make_subprocess_transport", "_child_watcher_callback",
):
    setattr(EventLoop, _name, getattr(unix_events._UnixSelectorEventLoop, _name))


def new_event_loop():
    """A new mioloop.EventLoop, for asyncio.Runner(loop_factory=...) or asyncio.run(..., loop_factory)."""
    return EventLoop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, making mioloop event loops."""

    _loop_factory = EventLoop


for _name in ("EventLoop", "new_event_loop", "EventLoopPolicy"):
    globals()[_name].__module__ = "mioloop"
