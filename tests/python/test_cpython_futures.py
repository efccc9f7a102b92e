"""CPython's own Future and Task tests (Lib/test/test_asyncio/test_futures.py, test_tasks.py), run
against mioloop.Future.

test_futures: BaseFutureTests, BaseFutureDoneCallbackTests and BaseFutureInheritanceTests, with
mioloop.Future, and a Python subclass of it, in place of asyncio's C Future. test_tasks:
BaseTaskTests (with SetMethodsTest) for mioloop.Task driving mioloop.Future, asyncio's C Future
and its pure-Python Future, for Python subclasses of mioloop.Task and mioloop.Future (the suite's
own add_subclass_tests), and for asyncio's C and Python Tasks driving mioloop.Future; and
BaseCurrentLoopTests for mioloop.Task; from Python 3.12, test_eager_task_factory for mioloop.Task
(eager_start). Every test runs on asyncio's own test loop, as CPython runs
them, except the classes at the end, which repeat the Future and Task suites on a
mioloop.EventLoop: there, the tests that drive the test loop's virtual clock are listed, with
that reason, and skipped.
"""

import asyncio
import sys
import unittest
from asyncio import futures
from test.test_asyncio import test_futures, test_tasks
from test.test_asyncio import utils as test_utils

import mioloop


class MioFutureTests(test_futures.BaseFutureTests, test_utils.TestCase):
    cls = mioloop.Future


class MioSubFuture(mioloop.Future):
    pass


class MioSubFutureTests(test_futures.BaseFutureTests, test_utils.TestCase):
    cls = MioSubFuture


class MioFutureDoneCallbackTests(test_futures.BaseFutureDoneCallbackTests, test_utils.TestCase):
    def _new_future(self):
        return mioloop.Future(loop=self.loop)


class MioSubFutureDoneCallbackTests(test_futures.BaseFutureDoneCallbackTests, test_utils.TestCase):
    def _new_future(self):
        return MioSubFuture(loop=self.loop)


class MioFutureInheritanceTests(test_futures.BaseFutureInheritanceTests, test_utils.TestCase):
    def _get_future_cls(self):
        return mioloop.Future


class MioFutureOnMioloopTests(test_futures.BaseFutureTests, test_utils.TestCase):
    """The Future suite again, with each future on a mioloop.EventLoop (callbacks scheduled natively)."""

    cls = mioloop.Future

    def new_test_loop(self, gen=None):
        loop = mioloop.new_event_loop()
        self.set_event_loop(loop)
        return loop


class CTaskMioFutureTests(test_tasks.BaseTaskTests, test_utils.TestCase):
    Task = test_tasks.tasks._CTask
    Future = mioloop.Future


class PyTaskMioFutureTests(test_tasks.BaseTaskTests, test_utils.TestCase):
    Task = test_tasks.tasks._PyTask
    Future = mioloop.Future


class MioTaskTests(test_tasks.BaseTaskTests, test_tasks.SetMethodsTest, test_utils.TestCase):
    Task = mioloop.Task
    Future = mioloop.Future


@test_tasks.add_subclass_tests
class MioTaskSubclassTests(test_tasks.BaseTaskTests, test_utils.TestCase):
    Task = mioloop.Task
    Future = mioloop.Future


class MioTaskCFutureTests(test_tasks.BaseTaskTests, test_utils.TestCase):
    Task = mioloop.Task
    Future = futures._CFuture


class MioTaskPyFutureTests(test_tasks.BaseTaskTests, test_utils.TestCase):
    Task = mioloop.Task
    Future = futures._PyFuture


class MioCurrentLoopTests(test_tasks.BaseCurrentLoopTests, test_utils.TestCase):
    current_task = staticmethod(asyncio.current_task)  # what the suite asks from Python 3.12

    def new_task(self, coro):
        return mioloop.Task(coro, loop=self.loop)


def skipped(reason, *names):
    """Test methods replaced by skips, each giving `reason`."""
    return {name: unittest.skip(reason)(lambda self: None) for name in names}


class MioTaskOnMioloopTests(test_tasks.BaseTaskTests, test_tasks.SetMethodsTest, test_utils.TestCase):
    """The Task suite again, on a mioloop.EventLoop: steps and wake-ups scheduled natively."""

    Task = mioloop.Task
    Future = mioloop.Future

    def new_test_loop(self, gen=None):
        loop = mioloop.new_event_loop()
        self.set_event_loop(loop)
        return loop

    locals().update(skipped(
        "drives asyncio's test loop's virtual clock (its `gen` of timeouts, `advance_time`); a real loop's clock runs on",
        "test_as_completed", "test_as_completed_reverse_wait", "test_as_completed_with_timeout", "test_sleep",
        "test_stop_while_run_in_complete", "test_task_cancel_sleeping_task", "test_wait", "test_wait_concurrent_complete",
        "test_wait_first_completed", "test_wait_first_exception", "test_wait_first_exception_in_wait",
        "test_wait_with_exception", "test_wait_with_iterator_of_tasks", "test_wait_with_timeout",
    ))
    locals().update(skipped(
        "calls `loop._run_once()` to run exactly one iteration of asyncio's loop; mioloop's runs up to 64 busy turns",
        "test_log_destroyed_pending_task",
    ))


if sys.version_info >= (3, 12):
    from test.test_asyncio import test_eager_task_factory as eager

    class MioEagerTaskFactoryLoopTests(eager.EagerTaskFactoryLoopTests, test_utils.TestCase):
        Task = mioloop.Task

    class MioNonEagerTests(eager.BaseNonEagerTaskFactoryTests, test_utils.TestCase):
        Task = mioloop.Task

    class MioEagerTests(eager.BaseEagerTaskFactoryTests, test_utils.TestCase):
        Task = mioloop.Task
