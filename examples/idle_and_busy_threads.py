"""How late does the event loop wake a task? The heartbeat of the chapter "Idle threads and busy threads".

A task sleeps one millisecond at a time and records how late each wake-up is, while the loop's other
task runs some work: inline in a coroutine, or on threads through `asyncio.to_thread`. A loop that is
free wakes the heartbeat on time; a loop that is busy, or waiting for the GIL, wakes it late.

Run it on its own with `python examples/idle_and_busy_threads.py`: it prints one line per way of doing
the same work, on asyncio's loop and, if `mioloop` can be imported, on mioloop's.
"""

# ANCHOR: heartbeat
import asyncio
import statistics
import time
from dataclasses import dataclass

PERIOD = 0.001  # the heartbeat asks to be woken every millisecond


async def heartbeat(lateness, stop):
    """Sleeps PERIOD at a time until `stop` is set; appends how late each wake-up was, in seconds."""
    while not stop.is_set():
        expected = time.perf_counter() + PERIOD
        await asyncio.sleep(PERIOD)
        lateness.append(time.perf_counter() - expected)
# ANCHOR_END: heartbeat


# ANCHOR: measure
import os


def idle_cpu_seconds():
    """CPU time the whole machine has left idle since it booted, summed over its cores."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()  # cpu user nice system idle iowait ...
    return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    """One run of some work beside the heartbeat."""

    result: object
    seconds: float  # wall-clock time of the work
    lateness: list  # one entry per wake-up of the heartbeat while the work ran, in seconds
    loop_cpu: float  # CPU time the loop's thread used meanwhile
    idle_cores: float  # how many cores the whole machine left idle meanwhile, on average

    @property
    def worst(self):
        return max(self.lateness)

    @property
    def typical(self):
        return statistics.median(self.lateness)


async def beside_heartbeat(work):
    """Awaits work() while a heartbeat runs on the same loop."""
    lateness, stop = [], asyncio.Event()
    beating = asyncio.create_task(heartbeat(lateness, stop))
    await asyncio.sleep(0.005)  # a few beats first, so that the work starts on a steady beat
    lateness.clear()
    start, cpu_start, idle_start = time.perf_counter(), time.thread_time(), idle_cpu_seconds()
    result = await work()
    seconds = time.perf_counter() - start
    loop_cpu, idle = time.thread_time() - cpu_start, idle_cpu_seconds() - idle_start
    stop.set()
    await beating  # its last wake-up is counted: after a blocked loop, it is the late one
    return Run(result, seconds, lateness, loop_cpu, idle / seconds)


def measure(work, loop_factory=asyncio.new_event_loop):
    """Runs beside_heartbeat(work) on a new loop made by loop_factory."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(beside_heartbeat(work))
# ANCHOR_END: measure


# ANCHOR: work
import hashlib

JOBS = 2  # pieces of work, run one after another inline or all at once on threads


def count_primes(limit):
    """Pure-Python CPU work: holds the GIL from start to end."""
    return sum(1 for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1)))


async def python_inline():
    return [count_primes(50_000) for _ in range(JOBS)]


async def python_on_threads():
    return await asyncio.gather(*(asyncio.to_thread(count_primes, 50_000) for _ in range(JOBS)))


DATA = bytes(32 << 20)  # 32 MiB of zeros


def sha256_repeated(data, times=4):
    """CPU work outside the interpreter: sha256 of `times` copies of data, without making them."""
    hasher = hashlib.sha256()
    for _ in range(times):
        hasher.update(data)  # releases the GIL while it hashes, since data is 2048 bytes or more
    return hasher.hexdigest()


async def sha256_inline():
    return [sha256_repeated(DATA) for _ in range(JOBS)]


async def sha256_on_threads():
    return await asyncio.gather(*(asyncio.to_thread(sha256_repeated, DATA) for _ in range(JOBS)))
# ANCHOR_END: work


if __name__ == "__main__":
    factories = {"asyncio": asyncio.new_event_loop}
    try:
        import mioloop

        factories["mioloop"] = mioloop.new_event_loop
    except ImportError:
        pass
    for name, factory in factories.items():
        for work in (python_inline, python_on_threads, sha256_inline, sha256_on_threads):
            run = measure(work, factory)
            print(
                f"{name:>8} {work.__name__:<18} {run.seconds:6.3f} s, {len(run.lateness):4} wake-ups, "
                f"late by {run.typical * 1e3:6.2f} ms typically, {run.worst * 1e3:7.2f} ms at worst, "
                f"loop thread busy {run.loop_cpu / run.seconds:4.0%}, {run.idle_cores:.1f} cores idle"
            )
