"""Type stubs for `mioloop.bridge`: Rust futures awaited from Python (chapter *Rust futures meet asyncio*).

Each function runs on the running event loop (asyncio's or mioloop's) and returns a `mioloop.Future`.
"""

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from . import Future

_T = TypeVar("_T")

def ready(value: _T) -> Future[_T]:
    """A Rust future that is ready at once: the future returned is already done."""

def ready_pyo3(value: _T) -> Coroutine[Any, Any, _T]:
    """The same, as a coroutine of pyo3's `experimental-async`, for comparison."""

def after(seconds: float, value: _T) -> Future[_T]:
    """A Rust future that another OS thread completes after `seconds`."""

def after_many(seconds: float, values: list[_T]) -> list[Future[_T]]:
    """Futures that one OS thread completes together after `seconds`: one wake-up of the loop."""

def relay(awaitable: Awaitable[_T]) -> Future[_T]:
    """A Rust future that awaits a Python awaitable (started as a task) and returns its result."""

def panics(message: str) -> Future[None]:
    """A Rust future that yields to the loop once, then panics with `message` (RuntimeError here)."""

def forever(on_drop: Callable[[], object]) -> Future[None]:
    """A Rust future that never finishes and calls `on_drop()` when dropped (on cancellation)."""
