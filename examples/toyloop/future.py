"""Futures: a task that waits is parked until what it waits for has happened, instead of being polled.

Chapter: "Futures". Run the demo from `examples/` with `python -m toyloop.future`.
"""

from toyloop import waiter
from toyloop.aiosocket import SelectorLoop


# ---- Counting resumptions

# ANCHOR: counted
class Counted:
    """Wraps a coroutine for the loop and counts how many times the loop resumed it."""

    def __init__(self, coroutine):
        self.coroutine = coroutine
        self.resumes = 0

    def send(self, value):
        self.resumes += 1
        return self.coroutine.send(value)

    def close(self):
        self.coroutine.close()
# ANCHOR_END: counted


# ---- The future

# ANCHOR: future
class Future:
    """A result that is not there yet. Whoever awaits it is resumed once it is set, and not before."""

    def __init__(self):
        self._done = False
        self._result = None
        self._exception = None
        self._callbacks = []  # each is called with this future once it is done

    def done(self):
        return self._done

    def result(self):
        if not self._done:
            raise RuntimeError("the future is not done yet")
        if self._exception is not None:
            raise self._exception
        return self._result

    def set_result(self, value):
        self._finish(value, None)

    def set_exception(self, error):
        self._finish(None, error)

    def _finish(self, value, error):
        if self._done:
            raise RuntimeError("the future is already done")
        self._result, self._exception, self._done = value, error, True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def add_done_callback(self, callback):
        if self._done:
            callback(self)
        else:
            self._callbacks.append(callback)

    def __await__(self):
        if not self._done:
            yield self  # to the loop: park me until this future is done
        return self.result()
# ANCHOR_END: future


# ---- The loop that parks tasks on futures

# ANCHOR: loop
class FutureLoop(SelectorLoop):
    """A SelectorLoop that also parks a task on the Future it yields, until the future is done."""

    def park(self, task, request):
        if isinstance(request, Future):
            request.add_done_callback(lambda _future: self.ready.append(task))
        else:
            super().park(task, request)
# ANCHOR_END: loop


# ---- Waiter and gather, rebuilt on a future

# ANCHOR: waiter
class Waiter(Future):
    """The Waiter of the chapter "Waiter and gather" as a future: awaiting it polls nothing."""

    def __init__(self, count=1):
        super().__init__()
        self.remaining = count
        if count == 0:
            self.set_result(None)

    def notify(self):
        self.remaining -= 1
        if self.remaining == 0 and not self.done():
            self.set_result(None)

    def fail(self, error):
        if not self.done():  # the first failure wins
            self.set_exception(error)


def gather(*coroutines):
    """waiter.gather, unchanged, waiting on the future-based Waiter."""
    return waiter.gather(*coroutines, waiter_type=Waiter)
# ANCHOR_END: waiter


if __name__ == "__main__":
    from toyloop.round_robin import Interrupt, worker

    async def consumer(awaitable):
        return await awaitable

    async def producer(turns, waiter):
        for _ in range(turns):
            await Interrupt()
        waiter.notify()

    for label, waiter_type in [("polling Waiter", waiter.Waiter), ("Waiter on a Future", Waiter)]:
        loop = FutureLoop()
        signal = waiter_type(1)
        counted = Counted(consumer(signal))
        loop.add_task(counted)
        loop.add_task(producer(5, signal))
        loop.run()
        loop.close()
        print(f"{label}: the waiting task was resumed {counted.resumes} times")

    loop = FutureLoop()
    log = []
    print(loop.run_task(gather(worker("a", 3, log), worker("b", 1, log))), log)
    loop.close()
