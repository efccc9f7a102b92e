"""The Python half of mioloop.EventLoop (the native half is crates/pymodule/src/event_loop.rs).

Executed once when the `mioloop` module is created, with `_EventLoopCore` in its globals.
asyncio's BaseEventLoop is reused on purpose for what runs once per program (run_forever,
run_until_complete, task factories, exception handlers, debug mode, executors); the native base
class overrides what runs once per callback or per task.
"""

import asyncio
from asyncio import base_events


class EventLoop(_EventLoopCore, base_events.BaseEventLoop):  # noqa: F821 (provided by the module)
    """An asyncio event loop whose ready queue, timers, I/O waits and handles live in Rust."""

    def __init__(self):
        base_events.BaseEventLoop.__init__(self)

    def close(self):
        """Closes the loop: refuses while running; drops every pending callback; idempotent."""
        base_events.BaseEventLoop.close(self)
        self._close_core()


def new_event_loop():
    """A new mioloop.EventLoop, for asyncio.Runner(loop_factory=...) or asyncio.run(..., loop_factory)."""
    return EventLoop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, making mioloop event loops."""

    _loop_factory = EventLoop


for _name in ("EventLoop", "new_event_loop", "EventLoopPolicy"):
    globals()[_name].__module__ = "mioloop"
