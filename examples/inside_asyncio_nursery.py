"""A nursery in miniature, on asyncio: the idea behind asyncio.TaskGroup.

The chapter *Causality and structure* includes the class below; run on its own, this file shows it at work.
"""

import asyncio


# ANCHOR: nursery
class Nursery:
    """No child outlives the `async with` block; the first failure cancels the rest."""

    def __init__(self):
        self.children = set()  # strong references: the loop keeps only weak ones
        self.errors = []

    async def __aenter__(self):
        return self

    def start_soon(self, coro):
        child = asyncio.get_running_loop().create_task(coro)
        self.children.add(child)
        child.add_done_callback(self._child_done)

    def _child_done(self, child):
        self.children.discard(child)
        if not child.cancelled() and child.exception() is not None:
            self.errors.append(child.exception())  # retrieved: never "never retrieved"
            for sibling in self.children:
                sibling.cancel()

    async def __aexit__(self, exc_type, exc, tb):
        if exc is not None:  # the body itself failed: its children go with it
            for child in self.children:
                child.cancel()
        while self.children:  # a child may start more children while we wait
            await asyncio.wait(set(self.children))
        if self.errors:
            raise ExceptionGroup("errors in a nursery", self.errors)
# ANCHOR_END: nursery


async def demo():
    log = []

    async def worker(name, delay, fail=False):
        try:
            await asyncio.sleep(delay)
            if fail:
                raise ValueError(name)
            log.append(f"{name} done")
        except asyncio.CancelledError:
            log.append(f"{name} cancelled")
            raise

    async with Nursery() as nursery:
        nursery.start_soon(worker("quick", 0.01))
    print(log)

    log.clear()
    try:
        async with Nursery() as nursery:
            nursery.start_soon(worker("slow", 10))
            nursery.start_soon(worker("broken", 0.01, fail=True))
    except* ValueError as group:
        print(log, group.exceptions)


if __name__ == "__main__":
    asyncio.run(demo())
