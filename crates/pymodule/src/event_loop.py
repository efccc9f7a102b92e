"""The Python half of mioloop.EventLoop (the native half is crates/pymodule/src/event_loop.rs).

Executed once when the `mioloop` module is created, with `_EventLoopCore` in its globals.
asyncio's BaseEventLoop is reused on purpose for what runs once per program (run_forever,
run_until_complete, task factories, exception handlers, debug mode, executors); the native base
class overrides what runs once per callback or per task.
"""

import asyncio
import weakref
from asyncio import base_events, selector_events, unix_events


class EventLoop(_EventLoopCore, base_events.BaseEventLoop):  # noqa: F821 (provided by the module)
    """An asyncio event loop whose ready queue, timers, I/O waits and handles live in Rust."""

    def __init__(self):
        base_events.BaseEventLoop.__init__(self)
        # fd -> transport, so that sock_* refuses a socket a transport owns (asyncio's rule).
        self._transports = weakref.WeakValueDictionary()

    # The sock_* coroutines are asyncio's own, reused on purpose: each tries the socket call at
    # once and, if it would block, waits for readiness with add_reader/add_writer, which are
    # native here (the core's selector over mio). Sendfile is asyncio's Unix one (os.sendfile).
    _add_reader = _EventLoopCore.add_reader  # noqa: F821
    _remove_reader = _EventLoopCore.remove_reader  # noqa: F821
    _add_writer = _EventLoopCore.add_writer  # noqa: F821
    _remove_writer = _EventLoopCore.remove_writer  # noqa: F821

    def close(self):
        """Closes the loop: refuses while running; drops every pending callback; idempotent."""
        base_events.BaseEventLoop.close(self)
        self._close_core()


for _name in (
    "_ensure_fd_no_transport",
    "sock_recv", "_sock_recv", "_sock_read_done",
    "sock_recv_into", "_sock_recv_into",
    "sock_recvfrom", "_sock_recvfrom",
    "sock_recvfrom_into", "_sock_recvfrom_into",
    "sock_sendall", "_sock_sendall",
    "sock_sendto", "_sock_sendto",
    "sock_connect", "_sock_connect", "_sock_connect_cb", "_sock_write_done",
    "sock_accept", "_sock_accept",
):
    setattr(EventLoop, _name, getattr(selector_events.BaseSelectorEventLoop, _name))
for _name in ("_sock_sendfile_native", "_sock_sendfile_native_impl", "_sock_sendfile_update_filepos", "_sock_add_cancellation_callback"):
    setattr(EventLoop, _name, getattr(unix_events._UnixSelectorEventLoop, _name))


def new_event_loop():
    """A new mioloop.EventLoop, for asyncio.Runner(loop_factory=...) or asyncio.run(..., loop_factory)."""
    return EventLoop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, making mioloop event loops."""

    _loop_factory = EventLoop


for _name in ("EventLoop", "new_event_loop", "EventLoopPolicy"):
    globals()[_name].__module__ = "mioloop"
