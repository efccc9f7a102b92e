"""Waiter and gather: tasks that wait for each other on the loop object.

Chapter: "Waiter and gather". Run the demo from `examples/` with `python -m toyloop.waiter`.
"""

from toyloop.loop import get_running_loop


# ANCHOR: waiter
class Waiter:
    """Done once it has been notified `count` times, or as soon as it is told of a failure."""

    def __init__(self, count=1):
        self.remaining = count  # notifications still to come
        self.error = None  # the first failure reported, if any

    def notify(self):
        self.remaining -= 1

    def fail(self, error):
        if self.error is None:  # the first failure wins; later ones are dropped
            self.error = error

    def __await__(self):
        while self.remaining > 0 and self.error is None:
            yield  # not yet: give up the turn, and look again on the next one
        if self.error is not None:
            raise self.error
# ANCHOR_END: waiter


# ANCHOR: gather
async def gather(*coroutines, waiter_type=Waiter):
    """Run the coroutines as tasks of the running loop; return their results in argument order.

    The first exception any of them raises is raised here, as soon as it happens.
    """
    results = [None] * len(coroutines)
    waiter = waiter_type(len(coroutines))

    async def run_one(index, coroutine):
        try:
            results[index] = await coroutine
        except Exception as error:
            waiter.fail(error)
        else:
            waiter.notify()

    loop = get_running_loop()
    for index, coroutine in enumerate(coroutines):
        loop.add_task(run_one(index, coroutine))
    await waiter
    return results
# ANCHOR_END: gather


if __name__ == "__main__":
    from toyloop.loop import Loop
    from toyloop.round_robin import worker

    log = []
    print(Loop().run_task(gather(worker("a", 3, log), worker("b", 1, log), worker("c", 2, log))))
    print(log)
