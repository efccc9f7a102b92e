"""A loop object: a ready queue that the running tasks can reach, and add tasks to.

Chapter: "A loop object". Run the demo from `examples/` with `python -m toyloop.loop`.

Design principles of the toy loop, kept by every later module:

1. A task is a coroutine. The loop resumes it with send(None) and reads what it yields as a request.
2. A turn resumes the tasks that were ready when it began; tasks made ready meanwhile wait for the next turn.
3. A running loop belongs to its thread: get_running_loop() answers for the calling thread only.
4. Later ideas (sockets, futures, timers) subclass Loop and override a hook; nothing is copied.
"""

import collections
import contextlib
import threading


# ---- The current loop

# ANCHOR: current
_running = threading.local()  # one slot per thread: the loop this thread is running, if any


def get_running_loop():
    """The loop running in the calling thread; RuntimeError outside one, as in asyncio."""
    loop = getattr(_running, "loop", None)
    if loop is None:
        raise RuntimeError("no running event loop")
    return loop


@contextlib.contextmanager
def running(loop):
    """Make `loop` the calling thread's running loop for the duration of the `with` block."""
    if getattr(_running, "loop", None) is not None:
        raise RuntimeError("cannot run a loop while another loop is running in this thread")
    _running.loop = loop
    try:
        yield
    finally:
        _running.loop = None
# ANCHOR_END: current


# ---- The loop

# ANCHOR: loop
class Loop:
    def __init__(self):
        self.ready = collections.deque()  # tasks that can run now, in the order they became ready
        self.stopping = False  # set by stop(): finish this turn, then return from run()

    def add_task(self, coroutine):
        self.ready.append(coroutine)
        return coroutine

    def stop(self):
        self.stopping = True

    def run(self):
        """Take turns until no task is left or stop() is called; the loop is current meanwhile."""
        self.stopping = False
        with running(self):
            while self.has_work() and not self.stopping:
                self.run_once()

    def has_work(self):
        return bool(self.ready)

    def run_once(self):
        """One turn: resume each task that was ready when the turn began."""
        for _ in range(len(self.ready)):
            self.step(self.ready.popleft())

    def step(self, task):
        try:
            request = task.send(None)
        except StopIteration:
            return  # finished
        self.park(task, request)

    def park(self, task, request):
        """Put a suspended task where it belongs; this loop knows only the bare yield."""
        if request is not None:
            raise RuntimeError(f"this loop does not understand a task that yields {request!r}")
        self.ready.append(task)  # round-robin: straight to the back of the queue

    def run_task(self, coroutine):
        """Run the loop until `coroutine` has finished; return its value or raise its exception."""
        outcome = []

        async def main():
            try:
                outcome.append((await coroutine, None))
            except Exception as error:
                outcome.append((None, error))
            self.stop()

        task = self.add_task(main())
        self.run()
        if not outcome:
            task.close()
            raise RuntimeError("the loop ran out of work before the task finished")
        value, error = outcome[0]
        if error is not None:
            raise error
        return value
# ANCHOR_END: loop


if __name__ == "__main__":
    from toyloop.round_robin import Interrupt

    async def child(name, log):
        log.append(f"{name} runs")
        await Interrupt()
        log.append(f"{name} ends")

    async def parent():
        log = []
        loop = get_running_loop()
        for name in ("x", "y"):
            loop.add_task(child(name, log))
        await Interrupt()
        await Interrupt()
        return log

    print(Loop().run_task(parent()))
