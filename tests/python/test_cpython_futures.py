"""CPython's own Future and Task tests (Lib/test/test_asyncio/test_futures.py, test_tasks.py), run
against mioloop.Future.

test_futures: BaseFutureTests, BaseFutureDoneCallbackTests and BaseFutureInheritanceTests, with
mioloop.Future, and a Python subclass of it, in place of asyncio's C Future. test_tasks:
BaseTaskTests with asyncio's C Task driving mioloop.Future wherever the suite makes futures. Every
test runs on asyncio's own test loop, as CPython runs them, except the class at the end, which
repeats the Future suite with the futures on a mioloop.EventLoop.
"""

import asyncio
import unittest
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
