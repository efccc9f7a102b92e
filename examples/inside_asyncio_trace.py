"""One tracing mixin, two event loops, one program, one trace: for the chapter "The anatomy of
asyncio's loop".

`TraceMixin` wraps every way a callback reaches a loop (call_soon, call_soon_threadsafe, call_at,
call_later), so that each callback records a readable name when the loop RUNS it. Mixed into
asyncio's SelectorEventLoop and into mioloop.EventLoop, it traces the same program on both.

Run it on its own with `python examples/inside_asyncio_trace.py`; without mioloop installed it
traces asyncio's loop only.
"""

import asyncio


# ANCHOR: mixin
class TraceMixin:
    """Records, in self.trace, the name of every callback at the moment the loop runs it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trace = []

    def _traced(self, callback):
        if getattr(callback, "traced", False):  # asyncio's call_later goes through call_at
            return callback

        def run(*args):
            self.trace.append(describe(callback, args))
            return callback(*args)

        run.traced = True
        return run

    def call_soon(self, callback, *args, context=None):
        return super().call_soon(self._traced(callback), *args, context=context)

    def call_soon_threadsafe(self, callback, *args, context=None):
        return super().call_soon_threadsafe(self._traced(callback), *args, context=context)

    def call_at(self, when, callback, *args, context=None):
        return super().call_at(when, self._traced(callback), *args, context=context)

    def call_later(self, delay, callback, *args, context=None):  # native on mioloop: no call_at
        return super().call_later(delay, self._traced(callback), *args, context=context)
# ANCHOR_END: mixin


# ANCHOR: describe
# The C Task's methods have odd names; the pure-Python Task's are __step and __wakeup already.
STEP_NAMES = {"TaskStepMethWrapper": "__step", "task_wakeup": "__wakeup"}


def describe(callback, args):
    """A name for a callback and its arguments with no address in it: the same on every run."""
    shown = ", ".join(repr(a) if isinstance(a, (int, str)) else type(a).__name__ for a in args)
    owner = getattr(callback, "__self__", None)
    if asyncio.isfuture(owner) and hasattr(owner, "get_coro"):  # a method of a Task
        kind = getattr(callback, "__name__", None) or type(callback).__name__
        return f"Task({owner.get_coro().__qualname__}).{STEP_NAMES.get(kind, kind)}({shown})"
    if asyncio.isfuture(owner):
        return f"Future.{callback.__name__}({shown})"
    return f"{callback.__qualname__}({shown})"
# ANCHOR_END: describe


# ANCHOR: program
def log(message):
    """What the program does, indented under the callback that is running it."""
    asyncio.get_running_loop().trace.append("    " + message)


def note(message):
    log(message)


async def child(fut):
    log("child: awaits the future")
    value = await fut
    log(f"child: got {value}, returns {value * 2}")
    return value * 2


async def main():
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    task = asyncio.create_task(child(fut))
    loop.call_soon(note, "note: a plain callback")
    log("main: created child, called call_soon; awaits sleep(0)")
    await asyncio.sleep(0)
    log("main: calls call_later(0.01, fut.set_result, 21); awaits child")
    loop.call_later(0.01, fut.set_result, 21)
    result = await task
    log(f"main: child returned {result}")
    return result
# ANCHOR_END: program


def trace_on(loop_class):
    """Runs main() on a traced subclass of loop_class; returns the trace of the run and the close."""
    traced = type(f"Traced{loop_class.__name__}", (TraceMixin, loop_class), {})
    with asyncio.Runner(loop_factory=traced) as runner:
        runner.run(main())
        loop = runner.get_loop()
    return loop.trace


if __name__ == "__main__":
    loops = [asyncio.SelectorEventLoop]
    try:
        import mioloop
    except ImportError:
        print("(mioloop is not installed: tracing asyncio's loop only)")
    else:
        loops.append(mioloop.EventLoop)
    traces = [trace_on(loop_class) for loop_class in loops]
    for loop_class, trace in zip(loops, traces):
        print(f"{loop_class.__module__}.{loop_class.__name__}:", *trace, sep="\n")
    assert all(trace == traces[0] for trace in traces), "the loops ran the callbacks in different orders"
