"""mioloop.offload: Rust kernels on real worker threads, awaited from asyncio's loop and mioloop's;
cancellation, panics, shutdown, backpressure and bad input, as the installed package behaves."""

import asyncio
import concurrent.futures
import hashlib
import subprocess
import sys
import threading
import time
import zlib

import pytest
from conftest import LOOPS

import mioloop
from mioloop import offload

LOOPS = dict(LOOPS)  # and uvloop, when it is installed
try:
    import uvloop

    LOOPS["uvloop"] = uvloop.new_event_loop
except ImportError:
    pass

DATA = bytes(range(256)) * 4099 + b"tail"


async def until(condition, seconds=10.0):
    """Waits, without blocking the loop, until `condition()` holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.001)


def test_kernels_agree_with_the_standard_library(run):
    async def main():
        return await asyncio.gather(
            offload.sha256(DATA),
            offload.crc32(DATA),
            offload.compress(DATA, 9),
            offload.count_primes(1_000_000),
            offload.empty(),
            offload.sha256(bytearray(DATA)),
            offload.sha256(memoryview(DATA)[1:]),
            offload.sha256(b""),
        )

    digest, crc, packed, primes, nothing, from_bytearray, from_view, of_empty = run(main)
    assert digest == hashlib.sha256(DATA).digest() == from_bytearray
    assert from_view == hashlib.sha256(DATA[1:]).digest()
    assert of_empty == hashlib.sha256(b"").digest()
    assert crc == zlib.crc32(DATA)
    assert zlib.decompress(packed) == DATA
    assert primes == 78_498
    assert nothing is None


def test_the_awaitable_is_a_mioloop_future_on_the_running_loop(run):
    async def main():
        future = offload.empty()
        return type(future), future.get_loop() is asyncio.get_running_loop(), await future

    assert run(main) == (mioloop.Future, True, None)


def test_jobs_run_on_the_pools_worker_threads_in_parallel(run):
    """Two sha256 jobs over 64 MiB on a 2-worker pool: the pool's threads are busy together."""

    async def main():
        big = bytes(64 << 20)
        with offload.Pool(2) as pool:
            jobs = [offload.sha256(big, pool=pool) for _ in range(2)]
            await until(lambda: pool.running == 2 or all(job.done() for job in jobs))
            seen_two = pool.running == 2
            await asyncio.gather(*jobs)
            return seen_two, pool.completed

    seen_two, completed = run(main)
    assert completed == 2
    assert seen_two, "both workers never ran at once"


def test_the_loop_keeps_running_while_workers_compute(run):
    async def main():
        ticks = 0
        stop = False

        async def ticker():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await offload.count_primes(30_000_000)
        stop = True
        await task
        return ticks

    assert run(main) > 10


def test_cancelling_the_task_cancels_a_running_job(run):
    async def main():
        with offload.Pool(1) as pool:
            job = asyncio.ensure_future(offload.count_primes(10**13, pool=pool))
            await until(lambda: pool.running == 1)
            job.cancel()
            with pytest.raises(asyncio.CancelledError):
                await job
            await until(lambda: pool.running == 0)  # the kernel saw its flag and stopped
            return await offload.count_primes(100, pool=pool)

    assert run(main) == 25


def test_a_queued_job_cancelled_before_it_starts_never_runs(run):
    async def main():
        with offload.Pool(1, 4) as pool:
            busy = asyncio.ensure_future(offload.count_primes(10**13, pool=pool))
            await until(lambda: pool.running == 1)
            queued = asyncio.ensure_future(offload.count_primes(100, pool=pool))
            await asyncio.sleep(0)
            assert pool.queued == 1
            queued.cancel()
            await asyncio.sleep(0)
            after_cancel = pool.queued
            busy.cancel()
            await asyncio.gather(busy, queued, return_exceptions=True)
            await until(lambda: pool.running == 0)
            return after_cancel, pool.completed

    assert run(main) == (0, 1)  # only the busy job ever ran


def test_wait_for_timeout_cancels_the_job(run):
    async def main():
        with offload.Pool(1) as pool:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(offload.count_primes(10**13, pool=pool), 0.05)
            await until(lambda: pool.running == 0)
            return pool.completed

    assert run(main) == 1


def test_a_panicking_kernel_raises_and_everything_goes_on(run):
    async def main():
        with offload.Pool(1) as pool:
            with pytest.raises(RuntimeError, match="the kernel panicked: out of cheese"):
                await offload.panics("out of cheese", pool=pool)
            return await offload.crc32(b"still here", pool=pool), pool.workers

    assert run(main) == (zlib.crc32(b"still here"), 1)


def test_backpressure_waits_for_room_without_blocking_the_loop(run):
    async def main():
        with offload.Pool(1, 2) as pool:
            busy = asyncio.ensure_future(offload.count_primes(10**13, pool=pool))
            await until(lambda: pool.running == 1)
            small = [asyncio.ensure_future(offload.count_primes(1000, pool=pool)) for _ in range(10)]
            await asyncio.sleep(0.01)  # the loop is free: this sleep ends
            counters = (pool.queued, pool.waiting)
            busy.cancel()
            results = await asyncio.gather(*small)
            await asyncio.gather(busy, return_exceptions=True)
            return counters, results

    (queued, waiting), results = run(main)
    assert (queued, waiting) == (2, 8)
    assert results == [168] * 10


def test_shutdown_finishes_queued_jobs_and_refuses_new_ones(run):
    async def main():
        pool = offload.Pool(1, 100)
        jobs = [offload.crc32(bytes([i]) * 100_000, pool=pool) for i in range(20)]
        pool.shutdown(wait=False)
        assert pool.closed
        with pytest.raises(RuntimeError, match="cannot schedule new jobs after shutdown"):
            offload.empty(pool=pool)
        return await asyncio.gather(*jobs)

    assert run(main) == [zlib.crc32(bytes([i]) * 100_000) for i in range(20)]


def test_shutdown_with_cancel_queued(run):
    async def main():
        pool = offload.Pool(1, 10)
        # Long enough (about 0.1 s here) to be seen running and still run at shutdown: a job of a
        # few milliseconds could finish between two looks of `until` on a loaded machine.
        busy = offload.count_primes(100_000_000, pool=pool)
        await until(lambda: pool.running == 1)
        queued = [offload.count_primes(10**13, pool=pool) for _ in range(3)]
        pool.shutdown(wait=False, cancel_queued=True)
        outcomes = await asyncio.gather(busy, *queued, return_exceptions=True)
        return outcomes[0], [type(outcome) for outcome in outcomes[1:]]

    assert run(main) == (5_761_455, [asyncio.CancelledError] * 3)


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: offload.sha256("text"), TypeError),
        (lambda: offload.crc32(12), TypeError),
        (lambda: offload.count_primes("10"), TypeError),
        (lambda: offload.compress(b"x", 12), ValueError),
        (lambda: offload.sha256(b"x", pool="default"), TypeError),
    ],
)
def test_bad_input_gets_a_clear_exception(run, call, error):
    async def main():
        with pytest.raises(error):
            call()
        return await offload.empty()  # the loop is fine

    assert run(main) is None


@pytest.mark.parametrize("make", [lambda: offload.Pool(0), lambda: offload.Pool(1, 0), lambda: offload.Pool(1, 1, nice=20), lambda: offload.Executor(0)])
def test_bad_pool_settings_are_value_errors(make):
    with pytest.raises(ValueError):
        make()


def test_a_kernel_needs_a_running_loop():
    with pytest.raises(RuntimeError, match="no running event loop"):
        offload.empty()


def test_a_noncontiguous_buffer_is_refused():
    async def main():
        with pytest.raises(BufferError):
            offload.sha256(memoryview(b"abcdef")[::2])

    asyncio.run(main())


def test_a_borrowed_bytearray_cannot_be_resized_while_the_job_holds_it(run):
    async def main():
        data = bytearray(32 << 20)
        with offload.Pool(1) as pool:
            job = offload.sha256(data, pool=pool)
            with pytest.raises(BufferError):
                data.extend(b"more")
            digest = await job
            data.extend(b"more")  # released on the loop's thread when the job came back
            return digest

    assert run(main) == hashlib.sha256(bytes(32 << 20)).digest()


def test_pool_counters_and_repr():
    with offload.Pool(3, 7) as pool:
        assert (pool.workers, pool.capacity, pool.queued, pool.running, pool.waiting, pool.closed) == (3, 7, 0, 0, 0, False)
        assert repr(pool) == "<mioloop.offload.Pool workers=3 capacity=7 queued=0 running=0 completed=0 open>"
    assert pool.closed
    assert offload.default_pool() is offload.default_pool()
    assert offload.default_pool().workers >= 1


def test_the_executor_runs_python_callables_for_run_in_executor(run):
    async def main():
        loop = asyncio.get_running_loop()
        executor = offload.Executor(2)
        try:
            names = await asyncio.gather(*(loop.run_in_executor(executor, lambda: threading.current_thread().name) for _ in range(4)))
            digest = await loop.run_in_executor(executor, lambda: hashlib.sha256(DATA).digest())
            with pytest.raises(ZeroDivisionError):
                await loop.run_in_executor(executor, lambda: 1 / 0)
            return names, digest
        finally:
            executor.shutdown()

    names, digest = run(main)
    assert all(name != threading.main_thread().name for name in names)
    assert digest == hashlib.sha256(DATA).digest()


def test_the_executor_is_a_concurrent_futures_executor():
    executor = offload.Executor(1)
    assert isinstance(executor, concurrent.futures.Executor)
    assert list(executor.map(pow, [2, 3], [10, 2])) == [1024, 9]
    with pytest.raises(TypeError):
        executor.submit(42)
    gate = threading.Event()
    held = executor.submit(gate.wait)
    queued = [executor.submit(lambda: "never") for _ in range(3)]
    gate.set()
    held.result(timeout=10)
    executor.shutdown(wait=True, cancel_futures=True)
    assert all(future.done() for future in queued)
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(print)


def test_the_executor_cancels_queued_calls_on_shutdown():
    executor = offload.Executor(1)
    gate = threading.Event()
    held = executor.submit(gate.wait, 10)
    while not held.running():
        time.sleep(0.001)
    queued = [executor.submit(lambda: "ran") for _ in range(3)]
    executor.shutdown(wait=False, cancel_futures=True)
    gate.set()
    assert held.result(timeout=10) is True
    assert [future.cancelled() for future in queued] == [True] * 3


def test_the_interpreter_exits_cleanly_with_pools_still_busy():
    """atexit drains and joins every live pool before finalization: queued work completes, no crash."""
    program = """
import asyncio, mioloop.offload as offload
pool = offload.Pool(1, 8)
async def main():
    for _ in range(4):
        offload.crc32(bytes(8 << 20), pool=pool)  # never awaited
    offload.count_primes(2_000_000)
asyncio.run(main())
print("main done")
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "main done\n"


def test_workers_run_at_a_lower_priority_than_the_loop():
    """nice 10 by default (Linux schedules threads: each has its own nice value)."""
    import os

    def nice_of_this_thread():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    base = nice_of_this_thread()
    for settings, expected in (({}, 10), ({"nice": 0}, 0), ({"nice": 19}, 19)):
        executor = offload.Executor(1, **settings)
        try:
            assert executor.submit(nice_of_this_thread).result(timeout=10) == min(19, base + expected)
        finally:
            executor.shutdown()


def test_no_pool_starts_after_the_atexit_join():
    """An atexit handler that runs after mioloop's own (registered earlier) cannot start a pool
    that nobody would join: it gets RuntimeError, and the interpreter exits cleanly."""
    program = """
import atexit
def late():
    import mioloop.offload as offload
    try:
        offload.Pool(1)
    except RuntimeError as error:
        print(error)
atexit.register(late)  # registered first, so it runs after mioloop's handler
import mioloop.offload
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "cannot start a pool after interpreter shutdown\n"
