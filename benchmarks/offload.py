"""GIL-free offload: CPU work beside a heartbeat, and the round trip of an empty job.

1. work: 64 chunks of CPU work while a heartbeat task sleeps 1 ms in a loop and records how late
   each wake-up is. The ways of doing the work:
     inline            hashlib.sha256 of each 8 MiB chunk, in the coroutine (the loop waits)
     to_thread Python  a pure-Python function per chunk on asyncio's default executor (its own
                       inline run is the baseline for its speedup)
     to_thread hashlib hashlib.sha256 of each chunk on the default executor (releases the GIL)
     offload sha256    mioloop.offload.sha256 of each chunk on the offload pool (Rust, no GIL)
     threads, no loop  the ceiling: hashlib on one plain thread per core, joined while the loop
                       waits (its heartbeat is meaningless and not shown)
   Reported: wall time, speedup over the inline run of the same work, heartbeat lateness p50/p99.
2. round trip: `await mioloop.offload.empty()` against `await asyncio.to_thread(lambda: None)`.

Every loop (asyncio, uvloop, rloop if installed, mioloop) runs every variant once per round,
interleaved; the tables print medians over the rounds, with ratios. `--svg DIR` writes the chart.

    python benchmarks/offload.py [--rounds 5] [--quick] [--svg book/src/img]
"""

import argparse
import asyncio
import hashlib
import os
import pathlib
import statistics
import threading
import time

import futures_bridge
import loop_core
import mioloop.offload

CHUNK = 8 << 20
CHUNKS = 64


def python_work(n):
    """Pure-Python CPU work: holds the GIL throughout."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def with_heartbeat(work):
    """Runs `work()` while a task sleeps 1 ms at a time; returns (seconds, lateness list in ms)."""
    late = []
    running = True

    async def heartbeat():
        while running:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            late.append((time.perf_counter() - start - 0.001) * 1e3)

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.01)  # the heartbeat is going
    late.clear()
    start = time.perf_counter()
    await work()
    seconds = time.perf_counter() - start
    running = False
    await beat
    return seconds, late or [0.0]


def variants(chunks, python_n):
    data = bytes(range(256)) * (CHUNK // 256)
    digest = hashlib.sha256(data).digest()

    async def inline():
        for _ in range(chunks):
            assert hashlib.sha256(data).digest() == digest

    async def inline_python():
        for _ in range(chunks):
            python_work(python_n)

    async def to_thread_python():
        await asyncio.gather(*(asyncio.to_thread(python_work, python_n) for _ in range(chunks)))

    async def to_thread_hashlib():
        digests = await asyncio.gather(*(asyncio.to_thread(lambda: hashlib.sha256(data).digest()) for _ in range(chunks)))
        assert digests == [digest] * chunks

    async def plain_threads():
        cores = os.cpu_count() or 1
        share = [chunks // cores + (i < chunks % cores) for i in range(cores)]
        threads = [threading.Thread(target=lambda n=n: [hashlib.sha256(data).digest() for _ in range(n)]) for n in share]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    async def offload_sha256():
        digests = await asyncio.gather(*(mioloop.offload.sha256(data) for _ in range(chunks)))
        assert digests == [digest] * chunks

    # name -> (work, the name of its inline baseline)
    return {
        "inline (hashlib)": (inline, "inline (hashlib)"),
        "inline (Python)": (inline_python, "inline (Python)"),
        "to_thread Python": (to_thread_python, "inline (Python)"),
        "to_thread hashlib": (to_thread_hashlib, "inline (hashlib)"),
        "offload sha256": (offload_sha256, "inline (hashlib)"),
        "threads, no loop": (plain_threads, "inline (hashlib)"),
    }


async def round_trips(n):
    start = time.perf_counter()
    for _ in range(n):
        await mioloop.offload.empty()
    offload = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for _ in range(n):
        await asyncio.to_thread(lambda: None)
    return offload, (time.perf_counter() - start) / n * 1e6


def measure(rounds, chunks, python_n, trips):
    loops = loop_core.loop_factories()
    work = variants(chunks, python_n)
    runs = {(loop, name): [] for loop in loops for name in work}
    empties = {loop: [] for loop in loops}
    for _ in range(rounds):
        for loop_name, factory in loops.items():
            with asyncio.Runner(loop_factory=factory) as runner:
                for name, (job, _) in work.items():
                    runs[loop_name, name].append(runner.run(with_heartbeat(job)))
                empties[loop_name].append(runner.run(round_trips(trips)))
    return loops, work, runs, empties


def summarize(loops, work, runs):
    """Per (loop, variant): median wall time, speedup over its inline baseline (the median of the
    rounds' ratios: each round compares runs made seconds apart), heartbeat p50/p99."""
    table = {}
    for loop in loops:
        for name, (_, baseline) in work.items():
            seconds = statistics.median(s for s, _ in runs[loop, name])
            speedup = statistics.median(b / s for (s, _), (b, _) in zip(runs[loop, name], runs[loop, baseline]))
            late = [ms for _, beats in runs[loop, name] for ms in beats]
            table[loop, name] = (seconds, speedup, percentile(late, 0.5), percentile(late, 0.99))
    return table


def print_tables(loops, work, table, empties, rounds, chunks):
    print(f"{chunks} chunks of CPU work beside a 1 ms heartbeat (median of {rounds}; heartbeat over all rounds)")
    print(f"  {'loop':<9}{'work':<20}{'wall s':>8}{'speedup':>9}{'beat p50 ms':>13}{'beat p99 ms':>13}")
    for loop in loops:
        for name in work:
            seconds, speedup, p50, p99 = table[loop, name]
            beats = f"{'—':>13}{'—':>13}" if name == "threads, no loop" else f"{p50:>13.2f}{p99:>13.2f}"
            print(f"  {loop:<9}{name:<20}{seconds:>8.3f}{speedup:>8.2f}x{beats}")
    print()
    print("round trip of an empty job: µs per await (median)")
    print(f"  {'loop':<9}{'offload':>9}{'to_thread':>11}{'ratio':>8}")
    for loop in loops:
        offload = statistics.median(o for o, _ in empties[loop])
        thread = statistics.median(t for _, t in empties[loop])
        print(f"  {loop:<9}{offload:>9.1f}{thread:>11.1f}{offload / thread:>8.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small work, one round")
    parser.add_argument("--svg", type=pathlib.Path, help="write the chart into this folder")
    args = parser.parse_args()
    chunks, python_n, trips, rounds = (CHUNKS, 300_000, 2000, args.rounds)
    if args.quick:
        chunks, python_n, trips, rounds = 4, 1000, 20, 1
    loops, work, runs, empties = measure(rounds, chunks, python_n, trips)
    table = summarize(loops, work, runs)
    print_tables(loops, work, table, empties, rounds, chunks)
    if args.svg:
        args.svg.mkdir(parents=True, exist_ok=True)
        # The two ways that run in parallel; inline and pure-Python rows are hundreds of times longer.
        rows = [(f"{loop}: {name}", table[loop, name][3]) for loop in loops for name in ("to_thread hashlib", "offload sha256")]
        futures_bridge.svg_bars("Heartbeat p99 lateness while hashing in parallel (lower is better)", rows, "ms", args.svg / "offload-heartbeat.svg")
        rows = [(f"{loop}: {name}", table[loop, name][1]) for loop in loops for name in work if not name.startswith("inline")]
        futures_bridge.svg_bars("Speedup over inline (higher is better)", rows, "x", args.svg / "offload-speedup.svg")


if __name__ == "__main__":
    main()
