"""Time: a heap of timers, call_later, and a sleep that parks its task on a future until the deadline.

Chapter: "Time". Run the demo from `examples/` with `python -m toyloop.timers`.
"""

import heapq
import itertools
import time

from toyloop.future import Future, FutureLoop
from toyloop.loop import get_running_loop


# ANCHOR: loop
class TimerLoop(FutureLoop):
    """A FutureLoop with a clock: callbacks scheduled for a deadline, and a selector that sleeps until it."""

    def __init__(self):
        super().__init__()
        self.timers = []  # a heap of (deadline, sequence, callback, args): the earliest deadline first
        self.sequence = itertools.count()  # breaks ties: of two equal deadlines, the first scheduled runs first

    def time(self):
        return time.monotonic()  # never jumps back, unlike the wall clock

    def call_at(self, deadline, callback, *args):
        heapq.heappush(self.timers, (deadline, next(self.sequence), callback, args))

    def call_later(self, delay, callback, *args):
        self.call_at(self.time() + delay, callback, *args)

    def has_work(self):
        return super().has_work() or bool(self.timers)

    def timeout(self):
        """0 while a task is ready; else until the next deadline; None (no limit) without timers."""
        timeout = super().timeout()
        if timeout is None and self.timers:
            timeout = max(0, self.timers[0][0] - self.time())
        return timeout

    def poll(self, timeout):
        super().poll(timeout)  # wait for sockets, at most until the next deadline...
        now = self.time()
        while self.timers and self.timers[0][0] <= now:  # ...then run every timer that is due
            _deadline, _sequence, callback, args = heapq.heappop(self.timers)
            callback(*args)
# ANCHOR_END: loop


# ANCHOR: sleep
async def sleep(delay, result=None):
    """Park the calling task on a future that a timer completes `delay` seconds from now."""
    future = Future()
    get_running_loop().call_later(delay, future.set_result, result)
    return await future
# ANCHOR_END: sleep


if __name__ == "__main__":
    from toyloop.future import gather

    async def nap(name, delay):
        await sleep(delay)
        print(name, "woke up")
        return name

    loop = TimerLoop()
    print(loop.run_task(gather(nap("slow", 0.03), nap("quick", 0.01), nap("middle", 0.02))))
    loop.close()
