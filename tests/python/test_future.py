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


def traced_call_soon(calls):
    """A call_soon that records what it schedules and then schedules it natively."""

    def call_soon(self, callback, *args, context=None):
        calls.append(getattr(callback, "__qualname__", type(callback).__name__))
        return mioloop.EventLoop.call_soon(self, callback, *args, context=context)

    return call_soon


def resolve_one(loop):
    """Makes a future, adds a callback, resolves it and lets the callback run."""
    future = loop.create_future()
    future.add_done_callback(lambda f: None)
    future.set_result(None)
    loop.run_until_complete(asyncio.sleep(0))


def test_a_call_soon_replaced_after_the_first_future_is_still_honoured():
    """Whether callbacks may bypass call_soon is kept per loop: replacing call_soon on the class, or
    on the loop itself, later, must still be seen, as asyncio's Future looks it up every time."""
    calls = []

    class Traced(mioloop.EventLoop):
        pass

    loop = Traced()
    try:
        resolve_one(loop)  # native scheduling decided, and remembered
        assert calls == []
        Traced.call_soon = traced_call_soon(calls)  # on the class
        resolve_one(loop)
        assert any(name.endswith("<lambda>") for name in calls), calls
        del Traced.call_soon
        calls.clear()
        resolve_one(loop)
        assert calls == []
        loop.call_soon = traced_call_soon(calls).__get__(loop)  # on the loop itself
        resolve_one(loop)
        assert any(name.endswith("<lambda>") for name in calls), calls
        del loop.call_soon
        calls.clear()
        resolve_one(loop)
        assert calls == []
    finally:
        loop.close()


def test_create_task_makes_a_mioloop_task_unless_a_factory_says_otherwise():
    async def nothing():
        return "ran"

    loop = mioloop.new_event_loop()
    try:
        task = loop.create_task(nothing(), name="first")
        assert isinstance(task, mioloop.Task) and isinstance(task, mioloop.Future) and asyncio.isfuture(task)
        assert (task.get_name(), loop.run_until_complete(task)) == ("first", "ran")
        loop.set_task_factory(lambda loop, coro, **kwargs: asyncio.Task(coro, loop=loop, **kwargs))
        task = loop.create_task(nothing(), name="second")
        assert type(task) is asyncio.Task and task.get_name() == "second"
        assert loop.run_until_complete(task) == "ran"
    finally:
        loop.close()


def test_a_task_refuses_what_is_not_a_coroutine_and_its_own_results():
    loop = mioloop.new_event_loop()
    try:
        with pytest.raises(TypeError, match="a coroutine was expected, got 123"):
            mioloop.Task(123, loop=loop)

        async def nothing():
            pass

        task = mioloop.Task(nothing(), loop=loop)
        with pytest.raises(RuntimeError, match="Task does not support set_result operation"):
            task.set_result(1)
        with pytest.raises(RuntimeError, match="Task does not support set_exception operation"):
            task.set_exception(ValueError())
        loop.run_until_complete(task)
    finally:
        loop.close()


@pytest.mark.skipif(not hasattr(asyncio, "eager_task_factory"), reason="asyncio has eager tasks from Python 3.12")
def test_an_eager_task_runs_its_first_step_at_once():
    async def main():
        log = []

        async def child():
            log.append("child started")
            await asyncio.sleep(0)
            log.append("child finished")

        task = mioloop.Task(child(), loop=asyncio.get_running_loop(), eager_start=True)
        log.append("created")
        await task
        return log

    assert run(main) == ["child started", "created", "child finished"]


@pytest.mark.skipif(hasattr(asyncio, "eager_task_factory"), reason="before Python 3.12, asyncio has no eager tasks")
def test_eager_start_says_it_needs_python_3_12():
    async def main():
        async def child():
            pass

        coro = child()
        with pytest.raises(TypeError, match="eager_start needs Python 3.12"):
            mioloop.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)
        coro.close()

    run(main)
