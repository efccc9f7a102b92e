"""How fast is a loop's core? Callbacks, tasks, futures, timers and wake-ups from other threads.

Compares asyncio, uvloop, rloop and mioloop on the same workloads, interleaved in one run (every
loop once per round and workload, in forward order one round and backward the next), and prints the
median of each with its ratio to asyncio. Absolute numbers depend on the machine; ratios measured in
one run are what to compare. A second table counts the rounds in which mioloop was ahead of each
other loop, run for run, and says how many it takes for a lead to be more than noise (a sign test);
a third gives the median of the rounds' ratios with a 95% interval for it.
A last line says whether each loop runs a call_soon_threadsafe callback in the sender's context, as
asyncio does: a loop that skips that copy does less per callback, and its threadsafe rate is not
comparable.

    python benchmarks/loop_core.py [--rounds 5] [--quick]

Loops that are not installed are left out (pip install uvloop rloop).
"""

import argparse
import asyncio
import contextvars
import math
import statistics
import threading
import time

import mioloop


def loop_factories():
    factories = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop

        factories["uvloop"] = uvloop.new_event_loop
    except ImportError:
        pass
    try:
        import rloop

        factories["rloop"] = rloop.new_event_loop
    except ImportError:
        pass
    factories["mioloop"] = mioloop.new_event_loop
    return factories


# ---- Workloads: each runs on a fresh loop and returns operations per second --------------------


def callbacks(loop, n):
    """A chain of call_soon: each callback schedules the next."""
    done = loop.create_future()
    remaining = n

    def step():
        nonlocal remaining
        remaining -= 1
        if remaining:
            loop.call_soon(step)
        else:
            done.set_result(None)

    start = time.perf_counter()
    loop.call_soon(step)
    loop.run_until_complete(done)
    return n / (time.perf_counter() - start)


def tasks(loop, n):
    """Ten tasks taking turns with asyncio.sleep(0): steps of a task per second."""

    async def worker(steps):
        for _ in range(steps):
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(*(worker(n // 10) for _ in range(10)))

    start = time.perf_counter()
    loop.run_until_complete(main())
    return n / (time.perf_counter() - start)


def futures(loop, n):
    """Create a future, resolve it from a callback, await it."""

    async def main():
        for _ in range(n):
            future = loop.create_future()
            loop.call_soon(future.set_result, None)
            await future

    start = time.perf_counter()
    loop.run_until_complete(main())
    return n / (time.perf_counter() - start)


def counted(loop, n):
    """A future, and a callback that resolves it on its n-th call."""
    done = loop.create_future()
    calls = 0

    def count():
        nonlocal calls
        calls += 1
        if calls == n:
            done.set_result(None)

    return done, count


def timers(loop, n):
    """Schedule n timers due within the next millisecond, in mixed order, and wait until all have fired.

    The window is short so that the work, not the clock, sets the pace."""
    done, fire = counted(loop, n)
    start = time.perf_counter()
    for i in range(n):
        loop.call_later(0.001 * ((i * 7919) % n) / n, fire)
    loop.run_until_complete(done)
    return n / (time.perf_counter() - start)


def threadsafe(loop, n, threads=4):
    """Four threads call call_soon_threadsafe as fast as they can: callbacks received per second."""
    done, receive = counted(loop, n)

    def send():
        for _ in range(n // threads):
            loop.call_soon_threadsafe(receive)

    senders = [threading.Thread(target=send) for _ in range(threads)]
    start = time.perf_counter()
    for sender in senders:
        sender.start()
    loop.run_until_complete(done)
    elapsed = time.perf_counter() - start
    for sender in senders:
        sender.join()
    return n / elapsed


def wake_latency(loop, n, threads=4):
    """An idle loop woken by four threads, each sending every millisecond: delay to the callback (ms)."""
    done = loop.create_future()
    delays = []

    def receive(sent):
        delays.append(time.perf_counter() - sent)
        if len(delays) == n:
            done.set_result(None)

    def send():
        for _ in range(n // threads):
            time.sleep(0.001)
            loop.call_soon_threadsafe(receive, time.perf_counter())

    senders = [threading.Thread(target=send) for _ in range(threads)]
    for sender in senders:
        sender.start()
    loop.run_until_complete(done)
    for sender in senders:
        sender.join()
    delays.sort()
    return delays[len(delays) // 2] * 1e3, delays[int(len(delays) * 0.99)] * 1e3


def threadsafe_keeps_context(loop):
    """Whether a callback sent with call_soon_threadsafe runs in a copy of the sender's context,
    as asyncio's contract says (a loop that skips the copy has less to do per callback)."""
    variable = contextvars.ContextVar("sender", default="the loop's")
    seen = loop.create_future()

    def send():
        variable.set("the sender's")
        loop.call_soon_threadsafe(lambda: seen.set_result(variable.get()))

    sender = threading.Thread(target=send)
    sender.start()
    result = loop.run_until_complete(seen)
    sender.join()
    return result == "the sender's"


# Sizes give each measurement a few tenths of a second on the fastest loop: shorter runs are
# dominated by noise on a small shared machine.
WORKLOADS = [
    ("callbacks/s (call_soon chain)", callbacks, 1_000_000),
    ("task steps/s (sleep(0))", tasks, 300_000),
    ("futures/s (create, set, await)", futures, 200_000),
    ("timers/s (schedule + fire)", timers, 300_000),
    ("call_soon_threadsafe/s (4 threads)", threadsafe, 600_000),
]


def round_order(names, index):
    """The loops in the order of round `index`: forward, then backward, so that no loop always runs
    right after the same neighbour, or first after a pause."""
    return names if index % 2 == 0 else names[::-1]


def wins_needed(rounds, level=0.05):
    """The fewest of `rounds` paired rounds a loop must win for its lead to be more than noise: the
    one-sided sign test, under which two equally fast loops each win a round with even odds.
    More than `rounds` when no count would do."""

    def chance(wins):  # of winning `wins` rounds or more by luck alone
        return sum(math.comb(rounds, k) for k in range(wins, rounds + 1)) / 2**rounds

    return next(wins for wins in range(rounds + 2) if chance(wins) <= level)


def median_interval(ratios, level=0.05):
    """The median of `ratios` (one per round) and an interval that holds the true median with at
    least 1 - `level` confidence whatever the noise's shape, each round falling below it with even
    odds (the sign test's reasoning, turned into an interval): the k-th smallest and the k-th
    largest ratio, where n + 1 - k is the sign test's bar at `level` / 2, so that the true median
    is outside only if as many rounds as that bar fell on one side of it by luck. The interval is
    None when there are too few rounds for one (fewer than 6 at 5%)."""
    ordered = sorted(ratios)
    n = len(ordered)
    k = n + 1 - wins_needed(n, level / 2)
    interval = (ordered[k - 1], ordered[n - k]) if k >= 1 else None
    return statistics.median(ordered), interval


def print_round_by_round(rows, names, rounds, ours="mioloop"):
    """For each row (label, {loop: one value per round}, higher_is_better), the number of rounds in
    which `ours` did better than each other loop, compared within the round; then the median of
    the rounds' ratios, `ours` to each other loop (above 1: `ours` did better), with its 95%
    interval: below 1 at its top, `ours` is behind beyond noise; above 1 at its bottom, ahead."""
    others = [name for name in names if name != ours]
    needed = wins_needed(rounds)
    verdict = f"a lead is more than noise from {needed} (sign test, p < 0.05)" if needed <= rounds else "too few rounds to tell a lead from noise"
    width = max(len(label) for label, _, _ in rows) + 2
    print(f"rounds {ours} was ahead, of {rounds}: {verdict}")
    print(f"{'':<{width}}" + "".join(f"{name:>10}" for name in others))
    for label, values, higher_is_better in rows:
        def ahead(mine, theirs):
            return mine > theirs if higher_is_better else mine < theirs

        cells = [sum(ahead(m, t) for m, t in zip(values[ours], values[other])) for other in others]
        print(f"{label:<{width}}" + "".join(f"{c:>10}" for c in cells))
    print()
    print(f"{ours} to each loop, median of the rounds' ratios [95% interval] (above 1: {ours} did better)")
    print(f"{'':<{width}}" + "".join(f"{name:>20}" for name in others))
    for label, values, higher_is_better in rows:
        cells = []
        for other in others:
            pairs = zip(values[ours], values[other])
            median, interval = median_interval([m / t if higher_is_better else t / m for m, t in pairs])
            cells.append(f"{median:.2f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""))
        print(f"{label:<{width}}" + "".join(f"{c:>20}" for c in cells))


def run_fresh(factory, workload, n):
    loop = factory()
    try:
        return workload(loop, n)
    finally:
        loop.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a tenth of the work, for a smoke test")
    args = parser.parse_args()
    factories = loop_factories()
    scale = 10 if args.quick else 1
    names = list(factories)

    results = {title: {name: [] for name in names} for title, _, _ in WORKLOADS}
    latency = {name: [] for name in names}
    for index in range(args.rounds):
        order = round_order(names, index)
        for title, workload, n in WORKLOADS:
            for name in order:  # interleaved: every loop once per round and workload
                results[title][name].append(run_fresh(factories[name], workload, n // scale))
        for name in order:
            latency[name].append(run_fresh(factories[name], wake_latency, 2000 // scale))

    width = max(len(t) for t, _, _ in WORKLOADS) + 2
    print(f"{'workload (median of ' + str(args.rounds) + ')':<{width}}" + "".join(f"{n:>20}" for n in names))
    for title, _, _ in WORKLOADS:
        medians = {name: statistics.median(values) for name, values in results[title].items()}
        cells = [f"{medians[n]:>10,.0f} ({medians[n] / medians['asyncio']:4.1f}x)" for n in names]
        print(f"{title:<{width}}" + "".join(f"{c:>20}" for c in cells))
    for index, label in ((0, "p50"), (1, "p99")):
        values = {name: statistics.median(v[index] for v in latency[name]) for name in names}
        cells = [f"{values[n]:>8.3f} ms ({values[n] / values['asyncio']:4.1f}x)" for n in names]
        print(f"{'wake-up latency ' + label + ' (lower is better)':<{width}}" + "".join(f"{c:>20}" for c in cells))
    rows = [(title, results[title], True) for title, _, _ in WORKLOADS]
    rows += [(f"wake-up latency {label}", {name: [v[index] for v in latency[name]] for name in names}, False) for index, label in ((0, "p50"), (1, "p99"))]
    print()
    print_round_by_round(rows, names, args.rounds)
    print()
    keeps = {name: run_fresh(factories[name], lambda loop, _: threadsafe_keeps_context(loop), 0) for name in names}
    print(f"{'threadsafe callback in sender context':<{width}}" + "".join(f"{'yes' if keeps[n] else 'NO':>20}" for n in names))


if __name__ == "__main__":
    main()
