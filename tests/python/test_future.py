"""mioloop.Future on its own loop: what CPython's suites (test_cpython_futures.py) run on asyncio's
test loop, checked here on mioloop.EventLoop, with its native scheduling of callbacks."""

import asyncio
import contextvars
import gc

import pytest

import mioloop


def run(main):
    with asyncio.Runner(loop_factory=mioloop.new_event_loop) as runner:
        return runner.run(main())


def test_create_future_makes_a_mioloop_future_that_asyncio_accepts():
    async def main():
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_later(0.001, future.set_result, "done")
        assert asyncio.isfuture(future) and future.get_loop() is loop
        results = await asyncio.gather(future, asyncio.wait_for(asyncio.shield(loop.create_future()), 0.01), return_exceptions=True)
        return type(future).__name__, results[0], type(results[1]).__name__

    assert run(main) == ("Future", "done", "TimeoutError")


def test_awaiting_a_future_of_another_loop_is_a_runtime_error():
    other = mioloop.new_event_loop()

    async def main():
        with pytest.raises(RuntimeError, match="attached to a different loop"):
            await other.create_future()
        return "refused"

    try:
        assert run(main) == "refused"
    finally:
        other.close()


def test_callbacks_run_in_their_context_in_order():
    var = contextvars.ContextVar("var", default="unset")
    seen = []

    async def main():
        future = asyncio.get_running_loop().create_future()
        for name in ("first", "second"):
            var.set(name)
            future.add_done_callback(lambda f: seen.append((var.get(), f.result())))
        future.set_result(1)
        await asyncio.sleep(0)

    run(main)
    assert seen == [("first", 1), ("second", 1)]


def test_an_exception_never_retrieved_is_reported_with_the_future():
    reports = []

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: reports.append(context))
        future = loop.create_future()
        future.set_exception(ValueError("lost"))
        del future
        gc.collect()

    run(main)
    [report] = reports
    assert report["message"] == "Future exception was never retrieved"
    assert repr(report["future"]) == "<Future finished exception=ValueError('lost')>"
    assert isinstance(report["exception"], ValueError)
