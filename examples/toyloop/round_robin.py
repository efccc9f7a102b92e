"""A round-robin loop: drive one coroutine to its end, then many, taking turns at every suspension.

Chapter: "A round-robin loop". Run the demo from `examples/` with `python -m toyloop.round_robin`.
"""

import collections
import time


# ANCHOR: run_task
def run_task(coroutine):
    """Drive one coroutine to its end with send(None); return what it returned."""
    while True:
        try:
            coroutine.send(None)
        except StopIteration as finished:
            return finished.value
# ANCHOR_END: run_task


# ANCHOR: run_tasks
def run_tasks(*coroutines):
    """Round-robin: resume the task at the front; unless it has finished, send it to the back."""
    ready = collections.deque(coroutines)
    while ready:
        task = ready.popleft()
        try:
            task.send(None)
        except StopIteration:
            continue  # finished: it leaves the queue for good
        ready.append(task)
# ANCHOR_END: run_tasks


# ANCHOR: interrupt
class Interrupt:
    """Awaiting it suspends the awaiting task once, offering nothing: asyncio.sleep(0)'s bare yield."""

    def __await__(self):
        yield
# ANCHOR_END: interrupt


# ANCHOR: busy_sleep
async def busy_sleep(delay):
    """Give up the turn again and again until `delay` seconds have passed: correct, and wasteful."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        await Interrupt()
# ANCHOR_END: busy_sleep


# ANCHOR: worker
async def worker(name, steps, log):
    for step in range(steps):
        log.append(f"{name}{step}")
        await Interrupt()  # let the others have a turn
    return name
# ANCHOR_END: worker


if __name__ == "__main__":
    print(run_task(worker("solo", 2, [])))
    log = []
    run_tasks(worker("a", 3, log), worker("b", 2, log))
    print(log)

    async def nap(name, delay, log):
        await busy_sleep(delay)
        log.append(name)

    log = []
    run_tasks(nap("slow", 0.1, log), nap("quick", 0.01, log))
    print(log)
