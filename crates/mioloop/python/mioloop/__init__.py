"""mioloop: the companion package of *Under the Await*.

The selector, the event loop, the Future and Task and the offload pool that the book builds, in Rust.
Everything lives in the compiled extension `mioloop.mioloop`; this file only re-exports it.
"""

from .mioloop import EventLoop, EventLoopPolicy, Future, Handle, Task, TimerHandle, __version__, new_event_loop, selectors
from .mioloop import bridge, offload

__all__ = ["EventLoop", "EventLoopPolicy", "Future", "Handle", "Task", "TimerHandle", "__version__", "bridge", "new_event_loop", "offload", "selectors"]
