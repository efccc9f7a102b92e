"""Did two threads run Python at the same time? The measuring harness of the chapter "Threads and the GIL".

Two threads call the same function many times and record, for each call, when it started, when it
ended, and whether the thread had to wait for the GIL during it. Calls that never waited are the only
ones whose intervals say something: a call that waited was paused, and its clock ran on regardless.

Run it on its own with `python examples/inside_asyncio_gil.py`.
"""

import hashlib


# ANCHOR: harness
import resource
import threading
import time


def blocked_so_far():
    """How many times this thread has blocked in the kernel (its voluntary context switches)."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


def calls_in_two_threads(work, calls, blocks_per_call=0):
    """Two threads call work() `calls` times each; per thread, a list of (start, end, waited)."""
    start_together = threading.Barrier(2)
    finished = []
    records = ([], [])

    def run(mine):
        start_together.wait()
        for _ in range(calls):
            blocked = blocked_so_far()
            start = time.perf_counter()
            work()
            end = time.perf_counter()
            # A thread that waits for the GIL sleeps on a condition variable: one more block.
            waited = blocked_so_far() - blocked > blocks_per_call
            mine.append((start, end, waited))
        finished.append(mine)
        while len(finished) < 2:  # hold on to the GIL until the other thread is done too
            pass

    threads = [threading.Thread(target=run, args=(mine,)) for mine in records]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return records


def overlaps(first, second, naive=False):
    """Pairs of calls, one per thread, that overlap in time; only calls that never waited, unless naive."""
    if not naive:
        first = [call for call in first if not call[2]]
        second = [call for call in second if not call[2]]
    return sum(1 for s1, e1, _ in first for s2, e2, _ in second if s1 < e2 and s2 < e1)
# ANCHOR_END: harness


def count_in_python():
    total = 0
    for i in range(2000):
        total += i


if __name__ == "__main__":
    megabyte = bytes(1 << 20)
    for name, work, calls, blocks in [
        ("pure Python", count_in_python, 300, 0),
        ("sha256 of 1 MiB", lambda: hashlib.sha256(megabyte), 100, 0),
        ("time.sleep(0.002)", lambda: time.sleep(0.002), 50, 1),
    ]:
        first, second = calls_in_two_threads(work, calls, blocks)
        print(f"{name:>18}: {overlaps(first, second, naive=True):5} overlapping pairs, "
              f"{overlaps(first, second):5} among calls that never waited for the GIL")
