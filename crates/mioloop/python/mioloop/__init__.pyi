"""Type stubs for `mioloop`, the companion package of *Under the Await*."""

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

from asyncio import base_events

from . import selectors as selectors

__version__: str

class Handle:
    """A scheduled callback, as asyncio's `Handle`."""

    def cancel(self) -> None: ...
    def cancelled(self) -> bool: ...
    def get_context(self) -> contextvars.Context: ...

class TimerHandle(Handle):
    """A callback scheduled for a time, as asyncio's `TimerHandle`."""

    def when(self) -> float: ...

class EventLoop(base_events.BaseEventLoop):
    """An asyncio event loop whose ready queue, timers, I/O waits and handles live in Rust."""

    def __init__(self) -> None: ...
    def time(self) -> float: ...
    def call_soon(self, callback: Callable[..., object], *args: Any, context: contextvars.Context | None = None) -> Handle: ...  # type: ignore[override]
    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any, context: contextvars.Context | None = None) -> Handle: ...  # type: ignore[override]
    def call_later(self, delay: float, callback: Callable[..., object], *args: Any, context: contextvars.Context | None = None) -> TimerHandle: ...  # type: ignore[override]
    def call_at(self, when: float, callback: Callable[..., object], *args: Any, context: contextvars.Context | None = None) -> TimerHandle: ...  # type: ignore[override]
    def add_reader(self, fd: Any, callback: Callable[..., object], *args: Any) -> Handle: ...  # type: ignore[override]
    def add_writer(self, fd: Any, callback: Callable[..., object], *args: Any) -> Handle: ...  # type: ignore[override]
    def remove_reader(self, fd: Any) -> bool: ...
    def remove_writer(self, fd: Any) -> bool: ...

class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, making mioloop event loops."""

def new_event_loop() -> EventLoop: ...
