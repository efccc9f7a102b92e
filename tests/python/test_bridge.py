"""mioloop.bridge: Rust futures awaited from Python and Python awaitables awaited from Rust, on
mioloop's loop and on stock asyncio, with real OS threads completing the Rust side."""

import asyncio
import gc
import threading
import time

import pytest

import mioloop
from mioloop import bridge


def test_a_ready_rust_future_is_done_before_it_is_awaited(run):
    async def main():
        future = bridge.ready({"answer": 42})
        return type(future), future.done(), await future

    assert run(main) == (mioloop.Future, True, {"answer": 42})


def test_a_rust_future_completed_by_another_thread(run):
    async def main():
        return await asyncio.gather(bridge.after(0.01, "a"), bridge.after(0.005, "b"))

    assert run(main) == ["a", "b"]


# A batch is what arrives before the loop polls: to make it exact, the loop thread is busy (in
# time.sleep) while the other thread completes all 500 futures.


def test_a_batch_completed_while_mioloop_is_busy_costs_no_waker_write():
    async def main():
        loop = asyncio.get_running_loop()
        before = loop._wakeups
        futures = bridge.after_many(0.0, list(range(500)))
        time.sleep(0.1)
        results = await asyncio.gather(*futures)
        return results, loop._wakeups - before

    with asyncio.Runner(loop_factory=mioloop.new_event_loop) as runner:
        results, wakeups = runner.run(main())
    assert results == list(range(500))
    assert wakeups == 0


def test_a_batch_from_another_thread_wakes_a_sleeping_mioloop_fewer_times_than_futures():
    async def main():
        loop = asyncio.get_running_loop()
        before = loop._wakeups
        results = await asyncio.gather(*bridge.after_many(0.02, list(range(500))))
        return results, loop._wakeups - before

    with asyncio.Runner(loop_factory=mioloop.new_event_loop) as runner:
        results, wakeups = runner.run(main())
    assert results == list(range(500))
    assert 1 <= wakeups < 500


def test_a_batch_costs_stock_asyncio_one_call_soon_threadsafe():
    calls = []

    class CountingLoop(asyncio.SelectorEventLoop):
        def call_soon_threadsafe(self, callback, *args, context=None):
            calls.append(callback)
            return super().call_soon_threadsafe(callback, *args, context=context)

    async def main():
        futures = bridge.after_many(0.0, list(range(500)))
        time.sleep(0.1)
        return await asyncio.gather(*futures)

    with asyncio.Runner(loop_factory=CountingLoop) as runner:
        assert runner.run(main()) == list(range(500))
    assert len(calls) == 1


def test_rust_awaits_a_python_awaitable(run):
    async def slow_double(x):
        await asyncio.sleep(0.01)
        return 2 * x

    async def main():
        return await bridge.relay(slow_double(21)), await bridge.relay(bridge.ready("nested"))

    assert run(main) == (42, "nested")


def test_a_python_exception_crosses_to_rust_and_back(run):
    async def fails():
        await asyncio.sleep(0)
        raise KeyError("missing")

    async def main():
        with pytest.raises(KeyError, match="missing"):
            await bridge.relay(fails())
        return "caught"

    assert run(main) == "caught"


def test_a_panic_becomes_runtime_error_and_the_loop_goes_on(run):
    async def main():
        with pytest.raises(RuntimeError, match="the Rust future panicked: kaboom"):
            await bridge.panics("kaboom")
        return await bridge.ready("still running")

    assert run(main) == "still running"


def test_cancelling_the_python_side_drops_the_rust_future(run):
    dropped = []

    async def main():
        future = bridge.forever(lambda: dropped.append(threading.current_thread() is threading.main_thread()))
        waiter = asyncio.ensure_future(future)
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        for _ in range(3):
            await asyncio.sleep(0)
        return future.cancelled()

    assert run(main) is True
    assert dropped == [True]  # dropped once, on the loop thread


def test_dropping_the_rust_side_cancels_the_python_task(run):
    events = []

    async def sleeper():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            events.append("python task cancelled")
            raise

    async def main():
        outer = bridge.relay(sleeper())
        await asyncio.sleep(0)
        outer.cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        return outer.cancelled()

    assert run(main) is True
    assert events == ["python task cancelled"]


def test_bad_input_is_a_python_error():
    with pytest.raises(RuntimeError, match="no running event loop"):
        bridge.ready(1)

    async def main():
        with pytest.raises(ValueError):
            bridge.after(-1.0, None)
        with pytest.raises(TypeError):
            bridge.after("soon", None)
        with pytest.raises(TypeError):
            await bridge.relay(42)

    asyncio.run(main())


def test_nothing_is_left_behind_after_many_rounds():
    async def main():
        for _ in range(200):
            await asyncio.gather(bridge.after(0, 1), bridge.relay(asyncio.sleep(0, 2)), bridge.ready(3))

    with asyncio.Runner(loop_factory=mioloop.new_event_loop) as runner:
        runner.run(main())
    gc.collect()
    assert not [o for o in gc.get_objects() if type(o) is mioloop.Future and not o.done()]
