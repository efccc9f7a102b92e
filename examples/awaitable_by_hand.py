"""A future written by hand, small enough to read in one screen: for the chapter "An awaitable by hand".

`HandFuture` is the smallest object that asyncio's Task will wait on. It keeps the five things Task
relies on (`_asyncio_future_blocking`, `get_loop`, `add_done_callback(fn, *, context)`, `result`,
`cancel`) and nothing else: no `exception()`, no `remove_done_callback`, no repr. The full Future,
in Rust, is the next chapter's `mioloop.Future`.

Run it on its own with `python examples/awaitable_by_hand.py`.
"""

import asyncio
import threading


# ANCHOR: hand_future
class HandFuture:
    """One result that arrives later, and the callbacks to run when it does."""

    # On the class, so that asyncio.isfuture() recognises the type; each await sets it on the instance.
    _asyncio_future_blocking = False

    def __init__(self, loop):
        self._loop = loop
        self._state = "PENDING"  # then FINISHED, FAILED or CANCELLED, once
        self._value = None  # the result, or the exception that result() raises
        self._callbacks = []  # (fn, context) pairs, run once, when the state leaves PENDING

    def get_loop(self):
        return self._loop

    def done(self):
        return self._state != "PENDING"

    def cancelled(self):
        return self._state == "CANCELLED"

    def add_done_callback(self, fn, *, context=None):
        if self.done():  # too late to wait: run it on the next turn
            self._loop.call_soon(fn, self, context=context)
        else:
            self._callbacks.append((fn, context))

    def _finish(self, state, value):
        if self.done():
            raise asyncio.InvalidStateError(f"the future is already {self._state}")
        self._state, self._value = state, value
        callbacks, self._callbacks = self._callbacks, []
        for fn, context in callbacks:  # scheduled, never called from here
            self._loop.call_soon(fn, self, context=context)

    def set_result(self, value):
        self._finish("FINISHED", value)

    def set_exception(self, error):
        self._finish("FAILED", error)

    def cancel(self, msg=None):
        if self.done():
            return False
        self._finish("CANCELLED", asyncio.CancelledError() if msg is None else asyncio.CancelledError(msg))
        return True

    def result(self):
        if self._state == "PENDING":
            raise asyncio.InvalidStateError("the result is not ready")
        if self._state != "FINISHED":
            raise self._value
        return self._value

    def __await__(self):
        if not self.done():
            self._asyncio_future_blocking = True  # "I come from an await: wait for me"
            yield self  # to the task driving the coroutine
        return self.result()  # resumed only after a done callback woke the task
# ANCHOR_END: hand_future


async def main():
    loop = asyncio.get_running_loop()
    timed = HandFuture(loop)
    loop.call_later(0.01, timed.set_result, "from a timer")
    print(await timed)
    threaded = HandFuture(loop)
    worker = threading.Thread(target=loop.call_soon_threadsafe, args=(threaded.set_result, "from a thread"))
    worker.start()
    print(await threaded)
    worker.join()


if __name__ == "__main__":
    asyncio.run(main())
