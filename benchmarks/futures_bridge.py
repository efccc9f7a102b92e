"""Futures across the boundary: asyncio futures per second on each loop, and the cost of awaiting a
Rust future from Python.

1. futures/s: create a future, resolve it from a callback, await it (loop_core.futures): asyncio's C
   Future and C Task on asyncio, uvloop and rloop (their create_future and create_task),
   mioloop.Future and mioloop.Task on mioloop, mioloop.Future with asyncio's C Task on mioloop
   (a task factory), and mioloop.Future on stock asyncio.
2. round trip: `await` of a trivially ready Rust future, per await: mioloop.bridge.ready (our
   bridge), mioloop.bridge.ready_pyo3 (pyo3's experimental-async coroutine) and the same future
   through pyo3-async-runtimes (examples/async-runtimes-peer, built here with cargo: its tokio
   runtime runs the future on a worker thread), on asyncio and on mioloop, beside the floor:
   awaiting a future that is already done.

Every measurement is interleaved (each variant once per round) and the median of the rounds is
printed, with ratios. `--svg DIR` also writes the two tables as bar charts (the book's figures).

    python benchmarks/futures_bridge.py [--rounds 5] [--quick] [--svg book/src/img]
"""

import argparse
import asyncio
import importlib.util
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

import loop_core
import mioloop
from mioloop import bridge


def with_mioloop_futures(factory):
    """A loop of `factory` whose create_future makes mioloop.Future."""

    def make():
        loop = factory()
        loop.create_future = lambda: mioloop.Future(loop=loop)
        return loop

    return make


def with_asyncio_tasks(factory):
    """A loop of `factory` whose tasks are asyncio's own (the C Task), through a task factory."""

    def make():
        loop = factory()
        loop.set_task_factory(lambda loop, coro, **kwargs: asyncio.Task(coro, loop=loop, **kwargs))
        return loop

    return make


def throughput_variants():
    loops = loop_core.loop_factories()
    variants = {f"{name} ({'mioloop Future, mioloop' if name == 'mioloop' else 'C Future, C'} Task)": factory for name, factory in loops.items()}
    variants["mioloop (mioloop Future, C Task)"] = with_asyncio_tasks(mioloop.new_event_loop)
    variants["asyncio (mioloop Future, C Task)"] = with_mioloop_futures(asyncio.new_event_loop)
    return variants


def round_trip(make_awaitable, n):
    """Microseconds per `await make_awaitable()`, measured inside one coroutine."""

    async def main():
        start = time.perf_counter()
        for _ in range(n):
            await make_awaitable()
        return (time.perf_counter() - start) / n * 1e6

    return main


def done_future():
    future = asyncio.get_running_loop().create_future()
    future.set_result(1)
    return future


ROOT = pathlib.Path(__file__).resolve().parent.parent


def async_runtimes_peer():
    """examples/async-runtimes-peer, built as a Python extension for this interpreter and imported
    (maturin's target folder keeps its build apart from `cargo test`'s). The copy it is imported
    from is deleted at once: the loaded library stays mapped, and no folder is left behind."""
    target = ROOT / "target" / "maturin"
    env = dict(os.environ, PYO3_BUILD_EXTENSION_MODULE="1", PYO3_PYTHON=sys.executable)
    command = ["cargo", "build", "--release", "-q", "-p", "async-runtimes-peer", "--target-dir", str(target)]
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    with tempfile.TemporaryDirectory(prefix="async-runtimes-peer-") as folder:
        path = pathlib.Path(folder) / ("async_runtimes_peer" + sysconfig.get_config_var("EXT_SUFFIX"))
        shutil.copy(target / "release" / "libasync_runtimes_peer.so", path)
        spec = importlib.util.spec_from_file_location("async_runtimes_peer", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


PEER = async_runtimes_peer()

ROUND_TRIPS = {
    "already-done future (floor)": done_future,
    "mioloop.bridge.ready": lambda: bridge.ready(1),
    "pyo3 experimental-async": lambda: bridge.ready_pyo3(1),
    "pyo3-async-runtimes (tokio)": lambda: PEER.ready(1),
}


def measure(rounds, scale):
    throughput = {name: [] for name in throughput_variants()}
    trips = {(what, loop): [] for what in ROUND_TRIPS for loop in ("asyncio", "mioloop")}
    for _ in range(rounds):
        for name, factory in throughput_variants().items():
            throughput[name].append(loop_core.run_fresh(factory, loop_core.futures, 200_000 // scale))
        for (what, loop_name) in trips:
            factory = asyncio.new_event_loop if loop_name == "asyncio" else mioloop.new_event_loop
            with asyncio.Runner(loop_factory=factory) as runner:
                trips[(what, loop_name)].append(runner.run(round_trip(ROUND_TRIPS[what], 200_000 // scale)()))
    return ({k: statistics.median(v) for k, v in throughput.items()}, {k: statistics.median(v) for k, v in trips.items()})


def print_tables(throughput, trips, rounds):
    base = throughput["asyncio (C Future, C Task)"]
    width = max(map(len, throughput)) + 2
    print(f"{'futures/s: create, set, await (median of ' + str(rounds) + ')':<{width + 14}}")
    for name, value in throughput.items():
        print(f"  {name:<{width}}{value:>12,.0f}  {value / base:5.2f}x asyncio")
    print()
    print("await of a ready Rust future: µs per await")
    width = max(len(w) for w, _ in trips) + 2
    print(f"  {'':<{width}}{'asyncio':>10}{'mioloop':>10}")
    for what in ROUND_TRIPS:
        print(f"  {what:<{width}}{trips[(what, 'asyncio')]:>10.2f}{trips[(what, 'mioloop')]:>10.2f}")


def svg_bars(title, rows, unit, path):
    """A horizontal bar chart: rows of (label, value), longest bar = largest value."""
    bar_height, gap, left, width = 22, 8, 250, 360
    height = 40 + len(rows) * (bar_height + gap)
    top = max(v for _, v in rows)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 110}" height="{height}" font-family="sans-serif" font-size="13">',
        f'<title>{title}</title>',
        f'<text x="8" y="20" font-weight="bold">{title}</text>',
    ]
    for i, (label, value) in enumerate(rows):
        y = 32 + i * (bar_height + gap)
        length = max(1, int(width * value / top))
        colour = "#c0392b" if "mioloop" in label else "#7f8c8d"
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{label}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{length}" height="{bar_height}" fill="{colour}"/>')
        parts.append(f'<text x="{left + length + 6}" y="{y + 15}">{value:,.2f} {unit}</text>' if value < 100 else f'<text x="{left + length + 6}" y="{y + 15}">{value:,.0f} {unit}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a tenth of the work, for a smoke test")
    parser.add_argument("--svg", type=pathlib.Path, help="write the charts into this folder")
    args = parser.parse_args()
    throughput, trips = measure(args.rounds, 10 if args.quick else 1)
    print_tables(throughput, trips, args.rounds)
    if args.svg:
        args.svg.mkdir(parents=True, exist_ok=True)
        svg_bars("Futures created, resolved and awaited per second", list(throughput.items()), "/s", args.svg / "futures-throughput.svg")
        rows = [(f"{what} on {loop}", value) for (what, loop), value in trips.items()]
        svg_bars("Awaiting a ready Rust future (lower is better)", rows, "µs", args.svg / "futures-round-trip.svg")


if __name__ == "__main__":
    main()
